#!/usr/bin/env python3
"""What each kind of MongoDB operation of the write path costs the store, in CPU.

Starts its own `secantusd-rs` (the MongoDB-compatible store the tests use) on a free
port of 127.0.0.1 with a throw-away data directory, creates a chat of 100 members laid
out as the service stores it, repeats each operation N times (default 2000) with
journaled writes, and prints the store's CPU time per operation from /proc. Needs
pymongo (`pip install pymongo`). Usage: bench/store-op-costs.py [N]
"""

import datetime
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from pymongo import InsertOne, MongoClient, ReturnDocument, UpdateOne, WriteConcern


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    port, data = free_port(), tempfile.mkdtemp()
    store = subprocess.Popen(
        ["secantusd-rs", "--port", str(port), "--storage-path", data, "--log-level", "ERROR"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(2)
        run(MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true"), store.pid, count)
    finally:
        store.terminate()
        store.wait()
        shutil.rmtree(data)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def run(client: MongoClient, pid: int, count: int) -> None:
    db = client.get_database("costs", write_concern=WriteConcern(w=1, j=True))
    now = datetime.datetime.now(datetime.timezone.utc)
    members = [{"user_id": f"u{i}", "role": "member"} for i in range(100)]
    for chat in range(10):
        db.chats.insert_one(
            {"_id": f"c{chat}", "type": "group", "title": "t", "participants": members, "last_seq": 0})
    db.chats.create_index([("participants.user_id", 1)])
    db.heads.insert_one({"_id": "c1", "last_seq": 0})
    db.heads.insert_one({"_id": "c2", "last_seq": 0})
    db.participants.insert_many(
        [{"_id": f"c1:u{i}", "chat_id": "c1", "user_id": f"u{i}", "role": "member", "muted": False} for i in range(100)]
    )
    db.participants.create_index([("chat_id", 1)])
    db.messages.create_index([("chat_id", 1), ("seq", -1)], unique=True)
    db.messages.create_index([("chat_id", 1), ("updated_seq", 1)])
    db.messages.create_index([("chat_id", 1), ("sender_id", 1), ("client_msg_id", 1)], unique=True)
    seq = [0]

    def message(i: int) -> dict:
        seq[0] += 1
        n = seq[0]
        return {"_id": f"m{n}", "chat_id": "c1", "seq": n, "updated_seq": n, "sender_id": f"u{i % 100}",
                "client_msg_id": f"k{n}", "text": "x" * 40, "created_at": now}

    preview = {"id": "m", "seq": 1, "text": "x" * 40, "sender_id": "u1", "created_at": now}

    head_seq = [0]

    def head_move() -> tuple[dict, dict]:
        # The compare-and-set of a run of one send: from the seq before it to the next.
        head_seq[0] += 1
        n = head_seq[0]
        return {"_id": "c2", "last_seq": n - 1}, {"$set": {"last_seq": n, "last_message": preview, "updated_at": now}}

    def head_then_insert(i: int) -> None:
        db.heads.update_one(*head_move())
        db.messages.insert_one(message(i))

    def head_and_insert_in_one_command(i: int) -> None:
        # MongoDB 8.0's client bulkWrite, ordered: a compare-and-set that misses upserts
        # a second head with the same _id, fails, and stops the insert behind it.
        query, update = head_move()
        client.bulk_write([
            UpdateOne(query, update, upsert=True, namespace="costs.heads"),
            InsertOne(message(i), namespace="costs.messages"),
        ], write_concern=WriteConcern(w=1, j=True))
    operations = {
        "ping": lambda i: db.command("ping"),
        "chat by id, whole document": lambda i: db.chats.find_one({"_id": "c1"}),
        "membership point lookup, 3 fields": lambda i: list(
            db.participants.find({"_id": {"$in": [f"c1:u{i % 100}"]}}, {"chat_id": 1, "user_id": 1, "role": 1})),
        "members of the chat, 2 fields": lambda i: list(db.participants.find({"chat_id": "c1"}, {"user_id": 1, "muted": 1})),
        "existing send by key": lambda i: list(
            db.messages.find({"$or": [{"chat_id": "c1", "sender_id": "u1", "client_msg_id": f"new{i}"}]})),
        "$inc on the chat, whole document back": lambda i: db.chats.find_one_and_update(
            {"_id": "c1"}, {"$inc": {"last_seq": 1}}, return_document=ReturnDocument.AFTER),
        "$inc on the chat, last_seq back": lambda i: db.chats.find_one_and_update(
            {"_id": "c1"}, {"$inc": {"last_seq": 1}}, projection={"last_seq": 1}, return_document=ReturnDocument.AFTER),
        "preview update on the chat": lambda i: db.chats.update_one(
            {"_id": "c1"}, {"$set": {"last_message": preview, "updated_at": now}}),
        "the same update on a small document": lambda i: db.heads.update_one(
            {"_id": "c1"}, {"$inc": {"last_seq": 1}, "$set": {"last_message": preview, "updated_at": now}}),
        "insert one message": lambda i: db.messages.insert_one(message(i)),
        "head compare-and-set, then insert: two commands": head_then_insert,
        "the same in one client bulkWrite": head_and_insert_in_one_command,
        "insert ten messages": lambda i: db.messages.insert_many([message(i + j) for j in range(10)], ordered=False),
        # What the persister's group commit sends when ten partitions' runs are ready at once.
        "ten existing-send keys in one $or": lambda i: list(db.messages.find({"$or": [
            {"chat_id": f"c{j}", "sender_id": "u1", "client_msg_id": f"new{i}"} for j in range(10)]})),
        "ten chats' updates in one update": lambda i: db.command({
            "update": "chats", "ordered": False, "writeConcern": {"w": 1, "j": True},
            "updates": [{"q": {"_id": f"c{j}"},
                         "u": {"$set": {"last_message": preview, "updated_at": now}}} for j in range(10)]}),
    }
    for name, operation in operations.items():
        for i in range(50):
            operation(i)
        start_cpu, start = cpu_seconds(pid), time.time()
        for i in range(count):
            operation(i)
        cpu, wall = cpu_seconds(pid) - start_cpu, time.time() - start
        print(f"{name:42s} store CPU {1e6 * cpu / count:7.0f} µs   round trip {1e6 * wall / count:7.0f} µs")


if __name__ == "__main__":
    main()

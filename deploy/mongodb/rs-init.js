// Initiates replica set rs0 as primary + secondary + arbiter (PSA, as the seed
// deployment has it) and makes majority the default write concern.
//
// Run it inside mongo-0, so that MongoDB's localhost exception allows it before
// any user exists (mongod runs with keyFile and authorization, mongod.conf):
//
//   kubectl -n chat exec -i mongo-0 -- mongosh --quiet --eval "$(cat deploy/mongodb/rs-init.js)"
//
// Safe to run again: an initiated set is left as it is. The write-concern step
// needs a user with the clusterManager role; if it is refused, create the admin
// user (README.md here) and run the file again with -u/-p.

const members = [
  // Preferred primary.
  { _id: 0, host: "mongo-0.mongo.chat.svc.cluster.local:27017", priority: 2 },
  // Secondary: a full copy that takes over when mongo-0 fails.
  { _id: 1, host: "mongo-1.mongo.chat.svc.cluster.local:27017", priority: 1 },
  // Arbiter: votes in elections, holds no data, never becomes primary.
  { _id: 2, host: "mongo-arbiter.mongo.chat.svc.cluster.local:27017", arbiterOnly: true },
];

// `hello` needs no privileges; setName appears once the set is initiated.
if (db.hello().setName === "rs0") {
  print("rs0 is already initiated");
} else {
  const result = rs.initiate({ _id: "rs0", members: members });
  printjson(result);
  if (result.ok !== 1) {
    quit(1);
  }
}

// Wait until this member is primary before changing cluster-wide defaults.
for (let second = 0; second < 60 && !db.hello().isWritablePrimary; second += 1) {
  sleep(1000);
}

// With an arbiter, MongoDB's implicit default write concern is w:1, and a failover
// could roll back writes whose events the persister has already published. Majority
// it is (the chat connection string asks for it as well).
try {
  printjson(
    db.adminCommand({
      setDefaultRWConcern: 1,
      defaultWriteConcern: { w: "majority", wtimeout: 10000 },
    }),
  );
} catch (error) {
  if (error.code !== 13) {
    throw error;
  }
  print("not allowed yet: create the admin user, then run this file again as that user");
}

const hello = db.hello();
printjson({ set: hello.setName, primary: hello.primary, hosts: hello.hosts, arbiters: hello.arbiters });

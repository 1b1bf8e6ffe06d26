//! Index maintenance against the real MongoDB-compatible store: start-up creates every
//! index the queries use and drops the ones earlier versions made that none uses.

use bson::{Document, doc};
use chat_store::{Store, indexes};
use chat_testkit::Servers;
use mongodb::IndexModel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obsolete_indexes_are_dropped_and_the_used_ones_kept() {
    let servers = Servers::start().await;
    let args = servers.mongo_args();
    let client = mongodb::Client::with_uri_str(&args.mongodb_uri).await.unwrap_or_else(|e| panic!("client: {e}"));
    let db = client.database(&args.mongodb_db);
    // What an earlier version left: its three extra indexes.
    let earlier = [
        ("chats", doc! { "created_at": -1 }, "created_at"),
        ("messages", doc! { "chat_id": 1, "created_at": -1 }, "chat_created_at"),
        ("messages", doc! { "sender_id": 1 }, "sender"),
    ];
    for (collection, keys, name) in earlier {
        let model = IndexModel::builder()
            .keys(keys)
            .options(mongodb::options::IndexOptions::builder().name(name.to_owned()).build())
            .build();
        db.collection::<Document>(collection).create_index(model).await.unwrap_or_else(|e| panic!("{e}"));
    }

    let store = Store::new(db.clone());
    store.ensure_indexes().await.unwrap_or_else(|e| panic!("indexes: {e}"));
    store.ensure_indexes().await.unwrap_or_else(|e| panic!("a second start: {e}"));

    for (collection, models) in indexes::all() {
        let names = db.collection::<Document>(collection).list_index_names().await.unwrap_or_else(|e| panic!("{e}"));
        for model in models {
            let name = model.options.and_then(|options| options.name).unwrap_or_default();
            assert!(names.contains(&name), "{collection}.{name} exists: {names:?}");
        }
        for (obsolete_collection, obsolete) in indexes::OBSOLETE {
            if obsolete_collection == collection {
                assert!(!names.iter().any(|n| n == obsolete), "{collection}.{obsolete} dropped: {names:?}");
            }
        }
    }
}

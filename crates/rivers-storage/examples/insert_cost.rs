//! Measures SurrealDB write and lookup costs for event segments (design aid for the event writer).

use std::time::Instant;

use serde_json::json;
use surrealdb::Surreal;
use surrealdb::engine::local::Db;
use surrealdb_core::kvs::Datastore;

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ds = Datastore::new("memory").await.unwrap();
        ds.bootstrap().await.unwrap();
        let db = Surreal::<Db>::unstable_from_datastore(ds, None).await.unwrap();
        db.use_ns("t").use_db("t").await.unwrap();
        db.query("DEFINE TABLE seg SCHEMALESS; DEFINE INDEX seg_runs ON seg FIELDS run_ids; DEFINE INDEX seg_assets ON seg FIELDS asset_keys; DEFINE TABLE plain SCHEMALESS;").await.unwrap().check().unwrap();
        let t = Instant::now();
        for s in 0..2000 {
            let events: Vec<_> = (0..30).map(|i| json!({"eid": format!("e{s}-{i}"), "asset_key": format!("a{}", (s * 10 + i / 3) % 5000), "run_id": format!("r{}", s / 20)})).collect();
            let assets: Vec<String> = (0..10).map(|i| format!("a{}", (s * 10 + i) % 5000)).collect();
            for (table, idx) in [("seg", true), ("plain", false)] {
                let _ = idx;
                db.query(format!("CREATE {table} CONTENT {{ seq: $seq, run_ids: [$run], asset_keys: $assets, events: $events }} RETURN NONE"))
                    .bind(json!({"seq": s, "run": format!("r{}", s / 20), "assets": assets, "events": events}))
                    .await.unwrap().check().unwrap();
            }
        }
        println!("writes: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
        for (label, sql) in [
            ("indexed CONTAINS run", "SELECT seq FROM seg WHERE run_ids CONTAINS $run"),
            ("indexed ?= run", "SELECT seq FROM seg WHERE run_ids ?= $run"),
            ("indexed IN run", "SELECT seq FROM seg WHERE $run IN run_ids"),
            ("indexed CONTAINSANY", "SELECT seq FROM seg WHERE run_ids CONTAINSANY [$run]"),
            ("indexed ANYINSIDE", "SELECT seq FROM seg WHERE [$run] ANYINSIDE run_ids"),
            ("scan CONTAINS run", "SELECT seq FROM plain WHERE run_ids CONTAINS $run"),
            ("indexed asset", "SELECT seq FROM seg WHERE asset_keys CONTAINS $asset ORDER BY seq DESC LIMIT 1"),
            ("indexed asset =", "SELECT seq FROM seg WHERE asset_keys = $asset"),
            ("scan asset", "SELECT seq FROM plain WHERE asset_keys CONTAINS $asset ORDER BY seq DESC LIMIT 1"),
        ] {
            let t = Instant::now();
            let mut r = db.query(sql).bind(json!({"run": "r50", "asset": "a123"})).await.unwrap();
            let rows: Vec<serde_json::Value> = r.take(0).unwrap();
            println!("{label}: {} rows in {:.2} ms", rows.len(), t.elapsed().as_secs_f64() * 1e3);
        }
    });
}

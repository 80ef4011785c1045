//! Measures the statements of one writer batch at several batch sizes (design aid).

use std::time::Instant;

use serde_json::{Value, json};
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
        db.query("DEFINE TABLE asset SCHEMALESS; DEFINE TABLE step_state SCHEMALESS; DEFINE TABLE seg SCHEMALESS;")
            .await.unwrap().check().unwrap();
        let event = "x".repeat(400);
        for n in [25_usize, 50, 100, 200, 400] {
            for round in 0..3 {
                let assets: Vec<Value> = (0..n).map(|i| json!({"id": format!("a{i}"), "asset_key": format!("a{i}"), "last_materialization_time": round, "last_materialization": event, "last_data_version": "v"})).collect();
                let steps: Vec<Value> = (0..n).map(|i| json!({"id": [format!("r{round}-{n}"), format!("a{i}"), ""], "status": "Success", "updated": 1, "started": 1, "ended": 2, "retries": 0, "counted": true})).collect();
                let events: Vec<String> = (0..3 * n).map(|_| event.clone()).collect();
                let plain: Vec<Value> = assets.iter().map(|a| { let mut a = a.clone(); a.as_object_mut().unwrap().remove("id"); a }).collect();
                let cases: [(&str, &str, Value); 9] = [
                    ("upsert SET IF loop", "BEGIN; FOR $r IN $rows { UPSERT type::record('asset', $r.asset_key) SET asset_key = $r.asset_key, last_data_version = IF $r.last_materialization_time > (last_materialization_time ?? 0) THEN $r.last_data_version ELSE last_data_version END, last_materialization = IF $r.last_materialization_time > (last_materialization_time ?? 0) THEN $r.last_materialization ELSE last_materialization END, last_materialization_time = math::max([last_materialization_time ?? 0, $r.last_materialization_time]) RETURN NONE; }; COMMIT;", json!({"rows": plain.clone()})),
                    ("upsert MERGE WHERE loop", "BEGIN; FOR $r IN $rows { UPSERT type::record('asset', $r.asset_key) MERGE $r WHERE (last_materialization_time ?? 0) < $r.last_materialization_time RETURN NONE; }; COMMIT;", json!({"rows": plain.clone()})),
                    ("update MERGE loop", "BEGIN; FOR $r IN $rows { UPDATE type::record('asset', $r.asset_key) MERGE $r RETURN NONE; }; COMMIT;", json!({"rows": plain.clone()})),
                    ("insert asset ODKU", "BEGIN; INSERT INTO asset $rows ON DUPLICATE KEY UPDATE last_data_version = IF $input.last_materialization_time > (last_materialization_time ?? 0) THEN $input.last_data_version ELSE last_data_version END, last_materialization = IF $input.last_materialization_time > (last_materialization_time ?? 0) THEN $input.last_materialization ELSE last_materialization END, last_materialization_time = math::max([last_materialization_time ?? 0, $input.last_materialization_time]) RETURN NONE; COMMIT;", json!({"rows": assets})),
                    ("insert asset plain upsert loop", "BEGIN; FOR $r IN $rows { UPSERT type::record('asset', $r.asset_key) CONTENT $r RETURN NONE; }; COMMIT;", json!({"rows": assets.iter().map(|a| { let mut a = a.clone(); a.as_object_mut().unwrap().remove("id"); a }).collect::<Vec<_>>()})),
                    ("insert step_state ODKU (new)", "BEGIN; INSERT INTO step_state $rows ON DUPLICATE KEY UPDATE status = $input.status RETURN NONE; COMMIT;", json!({"rows": steps})),
                    ("insert step_state IGNORE (new)", "BEGIN; INSERT IGNORE INTO step_state $rows RETURN NONE; COMMIT;", json!({"rows": steps.iter().map(|s| { let mut s = s.clone(); s["id"] = json!([format!("x{round}-{n}"), s["id"][1].clone(), ""]); s }).collect::<Vec<_>>()})),
                    ("segment", "BEGIN; UPSERT type::record('seg', $id) CONTENT { events: $events } RETURN NONE; COMMIT;", json!({"id": format!("s{round}-{n}"), "events": events})),
                    ("noop", "BEGIN; RETURN 1; COMMIT;", json!({})),
                ];
                for (label, sql, vars) in cases {
                    let t = Instant::now();
                    db.query(sql).bind(vars).await.unwrap().check().unwrap();
                    if round == 2 {
                        println!("n={n:>4} {label:<32} {:>8.2} ms  {:>6.1} us/row", t.elapsed().as_secs_f64() * 1e3, t.elapsed().as_secs_f64() * 1e6 / n as f64);
                    }
                }
            }
        }
    });
}

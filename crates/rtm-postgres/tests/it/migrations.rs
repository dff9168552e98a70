//! Migrations: V1 is the seed (textually and by catalog), migrate is
//! idempotent and safe to run concurrently, and runs in its schema only.

use std::collections::BTreeSet;
use std::path::PathBuf;

use rtm_postgres::{migrate, migrations, PgConfig, PgError};
use tokio_postgres::{Client, NoTls};

use crate::fresh;

const SEED_TABLES: [&str; 3] = ["runtime_records", "operation_log", "health_snapshots"];
/// Indexes V2 adds to the seed's tables (not part of the equivalence).
const V2_INDEXES: [&str; 3] = [
    "operation_log_source_ref_uidx",
    "operation_log_started_id_idx",
    "health_snapshots_status_game_idx",
];

/// Indexes V3 adds to the seed's tables.
const V3_INDEXES: [&str; 3] = [
    "runtime_records_lower_game_idx",
    "operation_log_source_ref_request_uidx",
    "operation_log_source_ref_idx",
];
/// Columns V3 adds (table, column), additive: NOT NULL with a default, so
/// the seed's columns and rows keep their meaning.
const V3_COLUMNS: [(&str, &str); 1] = [("operation_log", "request")];

/// The seed's `-- +goose Up` section. CI lays `shared/` beside the clone,
/// so it is `<workspace>/../shared/seed/…`.
fn seed_up() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/seed/00001_rtmanager_init.goose.sql");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading the seed {}: {e}", path.display()));
    let up = text
        .split_once("-- +goose Up")
        .expect("seed has an Up section")
        .1;
    let up = up
        .split_once("-- +goose Down")
        .expect("seed has a Down section")
        .0;
    assert!(
        up.contains("CREATE TABLE runtime_records"),
        "seed Up looks wrong"
    );
    up.to_owned()
}

async fn client_for(url: &str, search_path: Option<&str>) -> Client {
    let mut cfg: tokio_postgres::Config = url.parse().expect("url");
    if let Some(s) = search_path {
        cfg.options(format!("-c search_path={s}"));
    }
    let (client, conn) = cfg.connect(NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

#[test]
fn v1_file_is_the_seed_up_section() {
    let v1 = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../migrations/V1__rtmanager_init.sql"),
    )
    .expect("V1 exists");
    assert!(
        v1.contains(seed_up().trim()),
        "V1 must hold the seed's Up section verbatim"
    );
    assert!(
        !v1.contains("DROP TABLE"),
        "the Down section must not be in V1"
    );
}

#[test]
fn embedded_migrations_are_listed_in_order() {
    let all = migrations();
    let versions: Vec<i64> = all.iter().map(|m| m.version).collect();
    assert_eq!(&versions[..2], &[1, 2]);
    assert_eq!(all[0].name, "rtmanager_init");
}

/// Catalog facts of the seed tables in `schema`, with the schema name
/// replaced so two schemas compare.
async fn catalog(c: &Client, schema: &str) -> BTreeSet<String> {
    let tables: Vec<String> = SEED_TABLES.iter().map(|s| s.to_string()).collect();
    let norm = |s: String| s.replace(&format!("{schema}."), "S.").replace(schema, "S");
    let mut out = BTreeSet::new();
    for r in c
        .query(
            "SELECT c.relname::text, a.attnum::int, a.attname::text, format_type(a.atttypid, a.atttypmod),
                    a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), '<none>')
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE n.nspname = $1 AND c.relname = ANY($2) AND a.attnum > 0 AND NOT a.attisdropped",
            &[&schema, &tables],
        )
        .await
        .expect("columns")
    {
        let (table, column): (String, String) = (r.get(0), r.get(2));
        if V3_COLUMNS.contains(&(table.as_str(), column.as_str())) {
            continue;
        }
        out.insert(norm(format!(
            "column {}.{} #{} {} notnull={} default={}",
            r.get::<_, String>(0),
            r.get::<_, String>(2),
            r.get::<_, i32>(1),
            r.get::<_, String>(3),
            r.get::<_, bool>(4),
            r.get::<_, String>(5)
        )));
    }
    for r in c
        .query(
            "SELECT c.relname::text, con.conname::text, con.contype::text, pg_get_constraintdef(con.oid)
               FROM pg_constraint con
               JOIN pg_class c ON c.oid = con.conrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = $1 AND c.relname = ANY($2)",
            &[&schema, &tables],
        )
        .await
        .expect("constraints")
    {
        out.insert(norm(format!(
            "constraint {}.{} {} {}",
            r.get::<_, String>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2),
            r.get::<_, String>(3)
        )));
    }
    for r in c
        .query(
            "SELECT tablename::text, indexname::text, indexdef FROM pg_indexes
              WHERE schemaname = $1 AND tablename = ANY($2)",
            &[&schema, &tables],
        )
        .await
        .expect("indexes")
    {
        let name: String = r.get(1);
        if V2_INDEXES.contains(&name.as_str()) || V3_INDEXES.contains(&name.as_str()) {
            continue;
        }
        out.insert(norm(format!(
            "index {} {}",
            r.get::<_, String>(0),
            r.get::<_, String>(2)
        )));
    }
    out
}

async fn tables(c: &Client, schema: &str) -> BTreeSet<String> {
    c.query(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = $1",
        &[&schema],
    )
    .await
    .expect("tables")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[tokio::test]
async fn migrated_schema_matches_the_seed() {
    let (db_a, cfg_a) = fresh().await;
    let (db_b, _) = fresh().await;

    let report = migrate(&cfg_a).await.expect("migrate A");
    assert_eq!(
        report.applied.iter().map(|m| m.version).collect::<Vec<_>>(),
        migrations().iter().map(|m| m.version).collect::<Vec<_>>()
    );
    // Schema B: the seed's Up section itself, as the service role.
    let b = client_for(db_b.url(), Some(db_b.schema())).await;
    b.batch_execute(&seed_up()).await.expect("seed Up applies");

    let admin = client_for(db_a.admin_url(), None).await;
    let (cat_a, cat_b) = (
        catalog(&admin, db_a.schema()).await,
        catalog(&admin, db_b.schema()).await,
    );
    // Guard against comparing two empty sets.
    assert!(cat_b.len() > 30, "seed catalog too small: {cat_b:#?}");
    assert!(cat_b
        .iter()
        .any(|l| l.contains("operation_log_op_kind_chk")));
    assert!(cat_b
        .iter()
        .any(|l| l.starts_with("index operation_log") && l.contains("started_at DESC")));
    let only_a: Vec<_> = cat_a.difference(&cat_b).collect();
    let only_b: Vec<_> = cat_b.difference(&cat_a).collect();
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "schemas differ\nonly in migrated: {only_a:#?}\nonly in seed: {only_b:#?}"
    );

    // V2 adds exactly the outbox and refinery's history (in the schema).
    let ta = tables(&admin, db_a.schema()).await;
    let tb = tables(&admin, db_b.schema()).await;
    let extra: Vec<_> = ta.difference(&tb).cloned().collect();
    assert_eq!(
        extra,
        vec![
            "health_outbox".to_owned(),
            "refinery_schema_history".to_owned()
        ]
    );
    assert!(tb.is_subset(&ta));
    // Nothing leaked into public.
    assert!(!tables(&admin, "public")
        .await
        .contains("refinery_schema_history"));
}

#[tokio::test]
async fn migrate_is_idempotent() {
    let (_db, cfg) = fresh().await;
    let first = migrate(&cfg).await.expect("first");
    assert_eq!(first.applied.len(), migrations().len());
    let second = migrate(&cfg).await.expect("second");
    assert!(second.applied.is_empty(), "{second:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_migrations_both_succeed_and_apply_once() {
    let (_db, cfg) = fresh().await;
    let (a, b) = tokio::join!(migrate(&cfg), migrate(&cfg));
    let (a, b) = (a.expect("a"), b.expect("b"));
    let total = a.applied.len() + b.applied.len();
    assert_eq!(
        total,
        migrations().len(),
        "each migration applied once: {a:?} {b:?}"
    );
}

#[tokio::test]
async fn missing_schema_and_bad_schema_names_are_refused() {
    let (db, _) = fresh().await;
    let missing = PgConfig::new(db.url(), format!("{}_nope", db.schema()));
    assert!(matches!(
        migrate(&missing).await,
        Err(PgError::SchemaMissing(_))
    ));
    let bad = PgConfig::new(db.url(), "x; DROP TABLE y");
    assert!(matches!(
        migrate(&bad).await,
        Err(PgError::InvalidSchema(_))
    ));
}

//! Instances in typed columns: table `instances` (one row per instance, `name` unique) and
//! `instance_env` (one row per environment variable). Every write runs in one `BEGIN IMMEDIATE`
//! transaction, so the unique name and the version check hold between processes sharing the file.
//!
//! Schema version 2 replaced the untyped table of schema 1 (`instances(id, created_at, json)`,
//! written by earlier CLI releases): [`migrate`] carries its records over.

use rusqlite::{params, Connection, OptionalExtension, Row, Transaction, TransactionBehavior};

use super::error::db;
use super::{SqliteError, SqliteServerRepository};
use crate::domain::{
    Endpoint, ImageDigest, ImageRef, ImageTag, Instance, InstanceEnv, InstanceId, InstanceName,
    InstanceState, PrincipalId, ServerId, TaskHandle, Timestamp,
};
use crate::error::{EntityKind, Error, Result};

const CREATE: &str = "
    CREATE TABLE IF NOT EXISTS instances (
        id               TEXT PRIMARY KEY,
        name             TEXT NOT NULL UNIQUE,
        server_id        TEXT NOT NULL,
        image_repository TEXT NOT NULL,
        image_tag        TEXT NOT NULL,
        image_digest     TEXT NOT NULL,
        state            TEXT NOT NULL,
        owner            TEXT,
        restart_count    INTEGER NOT NULL,
        task             TEXT,
        endpoint_host    TEXT,
        endpoint_port    INTEGER,
        endpoint_path    TEXT,
        failure          TEXT,
        created_at_ns    INTEGER NOT NULL,
        updated_at_ns    INTEGER NOT NULL,
        stopped_at_ns    INTEGER,
        version          INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS instance_env (
        instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
        name        TEXT NOT NULL,
        value       TEXT NOT NULL,
        PRIMARY KEY (instance_id, name)
    );
";

const COLUMNS: &str = "id, name, server_id, image_repository, image_tag, image_digest, state, \
    owner, restart_count, task, endpoint_host, endpoint_port, endpoint_path, failure, \
    created_at_ns, updated_at_ns, stopped_at_ns, version";

/// Creates the instance tables, carrying records of the schema-1 JSON table over. Idempotent.
pub(super) fn migrate(conn: &Connection) -> Result<(), SqliteError> {
    let legacy: bool = conn
        .prepare("SELECT 1 FROM pragma_table_info('instances') WHERE name = 'json'")?
        .exists([])?;
    if legacy {
        conn.execute_batch("ALTER TABLE instances RENAME TO instances_schema1;")?;
    }
    conn.execute_batch(CREATE)?;
    if legacy {
        let rows: Vec<String> = {
            let mut stmt =
                conn.prepare("SELECT json FROM instances_schema1 ORDER BY created_at")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        for json in rows {
            match legacy_instance(&json) {
                Some(instance) => write(conn, &instance, true)?,
                // Records without an image (creation failed before the image was resolved)
                // cannot be restarted; they are dropped.
                None => tracing::warn!("dropping an instance record without an image"),
            }
        }
        conn.execute_batch("DROP TABLE instances_schema1;")?;
    }
    Ok(())
}

/// An instance from a schema-1 JSON record, if it carries what an instance needs.
fn legacy_instance(json: &str) -> Option<Instance> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let spec = v.get("spec")?;
    let image: ImageRef = serde_json::from_value(spec.get("image")?.clone()).ok()?;
    let name = InstanceName::new(v.get("id")?.as_str()?).ok()?;
    let server_id = ServerId::new(v.get("template")?.as_str()?).ok()?;
    let env = spec
        .get("env")
        .and_then(|e| e.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>())
        .unwrap_or_default();
    let env = InstanceEnv::parse_assignments(env).ok()?;
    let time = |k: &str| {
        v.get(k)
            .and_then(|t| t.as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let created_at = time("created_at")?;
    let updated_at = time("updated_at").unwrap_or(created_at);
    let state: InstanceState = v.get("status")?.as_str()?.parse().ok()?;
    Some(Instance {
        id: InstanceId::random(),
        name,
        server_id,
        image,
        state,
        owner: None,
        env,
        restart_count: 0,
        task: v
            .get("container")
            .and_then(|c| c.as_str())
            .and_then(|c| TaskHandle::new(c).ok()),
        endpoint: None,
        failure: v.get("error").and_then(|e| e.as_str()).map(str::to_owned),
        created_at,
        updated_at,
        stopped_at: (state == InstanceState::Stopped).then_some(updated_at),
        version: 1,
    })
}

fn ns(t: Timestamp) -> i64 {
    t.timestamp_nanos_opt()
        .unwrap_or_else(|| t.timestamp_millis().saturating_mul(1_000_000))
}

fn from_ns(v: i64) -> Timestamp {
    chrono::DateTime::from_timestamp_nanos(v)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Inserts (`insert`) or overwrites the row and the environment of `i` as given.
fn write(conn: &Connection, i: &Instance, insert: bool) -> rusqlite::Result<()> {
    let ep = i.endpoint.as_ref();
    let values = params![
        i.id.as_str(),
        i.name.as_str(),
        i.server_id.as_str(),
        i.image.repository(),
        i.image.tag().as_str(),
        i.image.digest().as_str(),
        i.state.as_str(),
        i.owner.as_ref().map(PrincipalId::as_str),
        i64::from(i.restart_count),
        i.task.as_ref().map(TaskHandle::as_str),
        ep.map(|e| e.host.as_str()),
        ep.map(|e| i64::from(e.port)),
        ep.map(|e| e.path.as_str()),
        i.failure,
        ns(i.created_at),
        ns(i.updated_at),
        i.stopped_at.map(ns),
        to_i64(i.version),
    ];
    if insert {
        conn.execute(
            &format!(
                "INSERT INTO instances ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
            ),
            values,
        )?;
    } else {
        // Identity columns (name, server, creation time) are never rewritten.
        conn.execute(
            "UPDATE instances SET image_repository = ?4, image_tag = ?5, image_digest = ?6,
               state = ?7, owner = ?8, restart_count = ?9, task = ?10, endpoint_host = ?11,
               endpoint_port = ?12, endpoint_path = ?13, failure = ?14, updated_at_ns = ?16,
               stopped_at_ns = ?17, version = ?18
             WHERE id = ?1",
            values,
        )?;
        conn.execute(
            "DELETE FROM instance_env WHERE instance_id = ?1",
            [i.id.as_str()],
        )?;
    }
    let mut stmt = conn.prepare_cached(
        "INSERT INTO instance_env (instance_id, name, value) VALUES (?1, ?2, ?3)",
    )?;
    for (name, value) in i.env.exposed() {
        stmt.execute(params![i.id.as_str(), name, value])?;
    }
    Ok(())
}

/// The columns of a row, before validation.
struct RawRow {
    id: String,
    name: String,
    server_id: String,
    repository: String,
    tag: String,
    digest: String,
    state: String,
    owner: Option<String>,
    restart_count: i64,
    task: Option<String>,
    endpoint: (Option<String>, Option<i64>, Option<String>),
    failure: Option<String>,
    created_at: i64,
    updated_at: i64,
    stopped_at: Option<i64>,
    version: i64,
}

fn raw(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: r.get(0)?,
        name: r.get(1)?,
        server_id: r.get(2)?,
        repository: r.get(3)?,
        tag: r.get(4)?,
        digest: r.get(5)?,
        state: r.get(6)?,
        owner: r.get(7)?,
        restart_count: r.get(8)?,
        task: r.get(9)?,
        endpoint: (r.get(10)?, r.get(11)?, r.get(12)?),
        failure: r.get(13)?,
        created_at: r.get(14)?,
        updated_at: r.get(15)?,
        stopped_at: r.get(16)?,
        version: r.get(17)?,
    })
}

/// Validates a stored row back into the domain; a row that no longer validates is a backend
/// error naming the instance.
fn instance(conn: &Connection, row: RawRow, op: &'static str) -> Result<Instance> {
    let corrupt = |e: Error| {
        Error::backend(
            "sqlite",
            op,
            Some(row.id.clone()),
            false,
            format!("stored instance is not valid: {e}"),
        )
    };
    let env: Vec<(String, String)> = {
        let mut stmt = conn
            .prepare_cached(
                "SELECT name, value FROM instance_env WHERE instance_id = ?1 ORDER BY name",
            )
            .map_err(db(op))?;
        let rows = stmt
            .query_map([row.id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(db(op))?;
        rows.collect::<rusqlite::Result<_>>().map_err(db(op))?
    };
    let build = || -> Result<Instance> {
        let endpoint = match &row.endpoint {
            (Some(host), Some(port), Some(path)) => Some(Endpoint::new(
                host.clone(),
                u16::try_from(*port)
                    .map_err(|_| Error::invalid("endpoint", "port out of range"))?,
                path.clone(),
            )?),
            _ => None,
        };
        Ok(Instance {
            id: InstanceId::new(row.id.clone())?,
            name: InstanceName::new(row.name.clone())?,
            server_id: ServerId::new(row.server_id.clone())?,
            image: ImageRef::new(
                row.repository.clone(),
                ImageTag::new(row.tag.clone())?,
                ImageDigest::new(row.digest.clone())?,
            )?,
            state: row.state.parse()?,
            owner: row.owner.clone().map(PrincipalId::new).transpose()?,
            env: InstanceEnv::from_exposed(env)?,
            restart_count: u32::try_from(row.restart_count).unwrap_or(u32::MAX),
            task: row.task.clone().map(TaskHandle::new).transpose()?,
            endpoint,
            failure: row.failure.clone(),
            created_at: from_ns(row.created_at),
            updated_at: from_ns(row.updated_at),
            stopped_at: row.stopped_at.map(from_ns),
            version: u64::try_from(row.version).unwrap_or(0),
        })
    };
    build().map_err(corrupt)
}

fn load(conn: &Connection, sql: &str, key: &str, op: &'static str) -> Result<Option<Instance>> {
    let row = conn.query_row(sql, [key], raw).optional().map_err(db(op))?;
    row.map(|r| instance(conn, r, op)).transpose()
}

fn by_id(conn: &Connection, id: &InstanceId, op: &'static str) -> Result<Option<Instance>> {
    load(
        conn,
        &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"),
        id.as_str(),
        op,
    )
}

fn immediate<'c>(conn: &'c mut Connection, op: &'static str) -> Result<Transaction<'c>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db(op))
}

impl SqliteServerRepository {
    pub(super) async fn insert_instance_row(&self, instance: &Instance) -> Result<Instance> {
        let mut stored = instance.clone();
        stored.version = 1;
        self.with_conn("insert_instance", move |conn| {
            const OP: &str = "insert_instance";
            let tx = immediate(conn, OP)?;
            let taken = |id: String| Error::AlreadyExists {
                kind: EntityKind::Instance,
                id,
            };
            if by_id(&tx, &stored.id, OP)?.is_some() {
                return Err(taken(stored.id.to_string()));
            }
            let name_taken = tx
                .prepare_cached("SELECT 1 FROM instances WHERE name = ?1")
                .and_then(|mut s| s.exists([stored.name.as_str()]))
                .map_err(db(OP))?;
            if name_taken {
                return Err(taken(format!("named {}", stored.name)));
            }
            write(&tx, &stored, true).map_err(db(OP))?;
            tx.commit().map_err(db(OP))?;
            Ok(stored)
        })
        .await
    }

    pub(super) async fn get_instance_row(&self, id: &InstanceId) -> Result<Instance> {
        let id = id.clone();
        self.with_conn("get_instance", move |conn| {
            by_id(conn, &id, "get_instance")?
                .ok_or_else(|| Error::not_found(EntityKind::Instance, &id))
        })
        .await
    }

    pub(super) async fn get_instance_row_by_name(&self, name: &InstanceName) -> Result<Instance> {
        let name = name.clone();
        self.with_conn("get_instance_by_name", move |conn| {
            load(
                conn,
                &format!("SELECT {COLUMNS} FROM instances WHERE name = ?1"),
                name.as_str(),
                "get_instance_by_name",
            )?
            .ok_or_else(|| Error::not_found(EntityKind::Instance, &name))
        })
        .await
    }

    pub(super) async fn list_instance_rows(
        &self,
        after: Option<InstanceName>,
        limit: usize,
    ) -> Result<Vec<Instance>> {
        self.with_conn("list_instances", move |conn| {
            const OP: &str = "list_instances";
            let rows: Vec<RawRow> = {
                let mut stmt = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM instances WHERE name > ?1 ORDER BY name LIMIT ?2"
                    ))
                    .map_err(db(OP))?;
                let rows = stmt
                    .query_map(
                        params![
                            after.as_ref().map_or("", InstanceName::as_str),
                            i64::try_from(limit).unwrap_or(i64::MAX)
                        ],
                        raw,
                    )
                    .map_err(db(OP))?;
                rows.collect::<rusqlite::Result<_>>().map_err(db(OP))?
            };
            rows.into_iter().map(|r| instance(conn, r, OP)).collect()
        })
        .await
    }

    pub(super) async fn update_instance_row(&self, instance: &Instance) -> Result<Instance> {
        let given = instance.clone();
        self.with_conn("update_instance", move |conn| {
            const OP: &str = "update_instance";
            let tx = immediate(conn, OP)?;
            let current = by_id(&tx, &given.id, OP)?
                .ok_or_else(|| Error::not_found(EntityKind::Instance, &given.id))?;
            if current.version != given.version {
                return Err(Error::Conflict {
                    kind: EntityKind::Instance,
                    id: given.id.to_string(),
                    expected: given.version,
                });
            }
            let mut next = given;
            next.name = current.name;
            next.server_id = current.server_id;
            next.created_at = current.created_at;
            next.version = current.version + 1;
            write(&tx, &next, false).map_err(db(OP))?;
            tx.commit().map_err(db(OP))?;
            Ok(next)
        })
        .await
    }

    pub(super) async fn delete_instance_row(&self, id: &InstanceId) -> Result<bool> {
        let id = id.clone();
        self.with_conn("delete_instance", move |conn| {
            const OP: &str = "delete_instance";
            let tx = immediate(conn, OP)?;
            tx.execute(
                "DELETE FROM instance_env WHERE instance_id = ?1",
                [id.as_str()],
            )
            .map_err(db(OP))?;
            let n = tx
                .execute("DELETE FROM instances WHERE id = ?1", [id.as_str()])
                .map_err(db(OP))?;
            tx.commit().map_err(db(OP))?;
            Ok(n > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written by schema 1 opens with its instances carried over, typed.
    #[test]
    fn migrates_schema1_json_records() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE instances (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, json TEXT NOT NULL);",
        )
        .unwrap();
        let digest = format!("sha256:{}", "c".repeat(64));
        let with_image = serde_json::json!({
            "id": "web-1", "template": "time", "status": "created", "container": "abc123",
            "endpoint": "http://127.0.0.1:1/mcp", "error": null,
            "spec": {"instance_id": "web-1", "server_id": "time",
                     "image": {"repository": "reg/time", "tag": "t1", "digest": digest},
                     "container_port": 8000, "mcp_path": "/mcp",
                     "resources": {"cpu_units": 256, "memory_mib": 512},
                     "env": ["TOKEN=s3cret"], "args": []},
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:01:00Z"
        });
        let without = serde_json::json!({
            "id": "broken", "template": "time", "status": "failed", "container": null,
            "endpoint": null, "error": "no image", "spec": null,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        });
        for (id, v) in [("web-1", &with_image), ("broken", &without)] {
            conn.execute(
                "INSERT INTO instances VALUES (?1, '2026-01-01T00:00:00Z', ?2)",
                params![id, v.to_string()],
            )
            .unwrap();
        }
        migrate(&conn).unwrap();
        migrate(&conn).unwrap();
        let name = InstanceName::new("web-1").unwrap();
        let i = load(
            &conn,
            &format!("SELECT {COLUMNS} FROM instances WHERE name = ?1"),
            name.as_str(),
            "test",
        )
        .unwrap()
        .expect("migrated record");
        assert_eq!(i.state, InstanceState::Created);
        assert_eq!(i.image.digest().as_str(), digest);
        assert_eq!(i.task.unwrap().as_str(), "abc123");
        assert_eq!(i.env.exposed().collect::<Vec<_>>(), [("TOKEN", "s3cret")]);
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM instances", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
    }
}

//! A small record store for long-running instances, beside the port's tables.
//! The record type belongs to the caller (the CLI); it is stored as JSON by id.

use rusqlite::{params, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::db;
use super::SqliteServerRepository;
use crate::error::Result;

impl SqliteServerRepository {
    /// Inserts or replaces the instance record `id`.
    ///
    /// # Errors
    /// `Backend` (backend `sqlite`).
    pub async fn put_instance<T: Serialize>(&self, id: &str, record: &T) -> Result<()> {
        let id = id.to_owned();
        let json = serde_json::to_string(record).map_err(db("put_instance"))?;
        let now = chrono::Utc::now().to_rfc3339();
        self.with_conn("put_instance", move |conn| {
            conn.execute(
                "INSERT INTO instances (id, created_at, json) VALUES (?1, ?2, ?3)
                 ON CONFLICT(id) DO UPDATE SET json = excluded.json",
                params![id, now, json],
            )
            .map_err(db("put_instance"))?;
            Ok(())
        })
        .await
    }

    /// The instance record `id`, if any.
    ///
    /// # Errors
    /// `Backend` (backend `sqlite`), also for a record that does not parse as `T`.
    pub async fn get_instance<T: DeserializeOwned + Send + 'static>(
        &self,
        id: &str,
    ) -> Result<Option<T>> {
        let id = id.to_owned();
        self.with_conn("get_instance", move |conn| {
            let json: Option<String> = conn
                .query_row("SELECT json FROM instances WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db("get_instance"))?;
            json.map(|j| serde_json::from_str(&j).map_err(db("get_instance")))
                .transpose()
        })
        .await
    }

    /// All instance records, oldest first.
    ///
    /// # Errors
    /// `Backend` (backend `sqlite`).
    pub async fn list_instances<T: DeserializeOwned + Send + 'static>(&self) -> Result<Vec<T>> {
        self.with_conn("list_instances", move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT json FROM instances ORDER BY created_at, id")
                .map_err(db("list_instances"))?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(db("list_instances"))?;
            let mut out = Vec::new();
            for row in rows {
                let json = row.map_err(db("list_instances"))?;
                out.push(serde_json::from_str(&json).map_err(db("list_instances"))?);
            }
            Ok(out)
        })
        .await
    }

    /// Deletes the instance record `id` (idempotent); whether it existed.
    ///
    /// # Errors
    /// `Backend` (backend `sqlite`).
    pub async fn delete_instance(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.with_conn("delete_instance", move |conn| {
            let n = conn
                .execute("DELETE FROM instances WHERE id = ?1", [id])
                .map_err(db("delete_instance"))?;
            Ok(n > 0)
        })
        .await
    }
}

//! Instances of the in-memory repository: a map by id and a unique index by name, under one
//! mutex so the name check and the insert are one atomic step.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::clock::lock;
use crate::domain::{Instance, InstanceId, InstanceName};
use crate::error::{EntityKind, Error, Result};

#[derive(Debug, Default)]
struct Tables {
    by_id: HashMap<InstanceId, Instance>,
    by_name: BTreeMap<InstanceName, InstanceId>,
}

/// The instance part of [`super::InMemoryServerRepository`].
#[derive(Debug, Default)]
pub(super) struct InstanceTable {
    inner: Mutex<Tables>,
}

impl InstanceTable {
    pub(super) fn insert(&self, instance: &Instance) -> Result<Instance> {
        let mut t = lock(&self.inner);
        let taken = |id: String| Error::AlreadyExists {
            kind: EntityKind::Instance,
            id,
        };
        if t.by_id.contains_key(&instance.id) {
            return Err(taken(instance.id.to_string()));
        }
        if t.by_name.contains_key(&instance.name) {
            return Err(taken(format!("named {}", instance.name)));
        }
        let mut stored = instance.clone();
        stored.version = 1;
        t.by_name.insert(stored.name.clone(), stored.id.clone());
        t.by_id.insert(stored.id.clone(), stored.clone());
        Ok(stored)
    }

    pub(super) fn get(&self, id: &InstanceId) -> Result<Instance> {
        lock(&self.inner)
            .by_id
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(EntityKind::Instance, id))
    }

    pub(super) fn get_by_name(&self, name: &InstanceName) -> Result<Instance> {
        let t = lock(&self.inner);
        t.by_name
            .get(name)
            .and_then(|id| t.by_id.get(id))
            .cloned()
            .ok_or_else(|| Error::not_found(EntityKind::Instance, name))
    }

    pub(super) fn list(&self, after: Option<InstanceName>, limit: usize) -> Vec<Instance> {
        let t = lock(&self.inner);
        t.by_name
            .iter()
            .filter(|(name, _)| after.as_ref().is_none_or(|a| *name > a))
            .filter_map(|(_, id)| t.by_id.get(id).cloned())
            .take(limit)
            .collect()
    }

    pub(super) fn update(&self, instance: &Instance) -> Result<Instance> {
        let mut t = lock(&self.inner);
        let stored = t
            .by_id
            .get_mut(&instance.id)
            .ok_or_else(|| Error::not_found(EntityKind::Instance, &instance.id))?;
        if stored.version != instance.version {
            return Err(Error::Conflict {
                kind: EntityKind::Instance,
                id: instance.id.to_string(),
                expected: instance.version,
            });
        }
        let mut next = instance.clone();
        // Identity never changes through an update.
        next.name = stored.name.clone();
        next.server_id = stored.server_id.clone();
        next.created_at = stored.created_at;
        next.version = stored.version + 1;
        *stored = next.clone();
        Ok(next)
    }

    pub(super) fn delete(&self, id: &InstanceId) -> bool {
        let mut t = lock(&self.inner);
        match t.by_id.remove(id) {
            Some(gone) => {
                t.by_name.remove(&gone.name);
                true
            }
            None => false,
        }
    }
}

//! Instances in the sessions table, as typed attributes.
//!
//! - Instance item, hash key `session_id = "#instance#<id>"`: `instance_id`, `instance_name`,
//!   `instance_server`, `image_repository`, `image_tag`, `image_digest`, `instance_state` (S),
//!   `owner` (S, optional), `env` (M of S), `restart_count` (N), `task` (S, optional),
//!   `endpoint_host` / `endpoint_port` (N) / `endpoint_path` (optional), `failure` (S, optional),
//!   `instance_created_at` / `updated_at` / `stopped_at` (N, epoch ms), `version` (N) and
//!   `instances = "all"`, the hash key of the sparse index `instances-by-name` (range
//!   `instance_name`) that lists instances by name. Instance items carry neither `server_id`
//!   nor `live`, so the session indexes never see them.
//! - Name claim item, `session_id = "#instance-name#<name>"` with `instance_id`: written in the
//!   same transaction as the instance, with a not-exists condition, so names are unique and
//!   lookups by name are strongly consistent (a GSI read is not).

use std::collections::HashMap;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem,
};
use toolshed_core::domain::{
    Endpoint, ImageDigest, ImageRef, ImageTag, Instance, InstanceEnv, InstanceId, InstanceName,
    PrincipalId, ServerId, TaskHandle,
};
use toolshed_core::error::EntityKind;
use toolshed_core::{Error, Result};

use super::codec::{attr, get_n, get_s, ms, n, s, Item};
use super::{build_err, DynamoServerRepository};
use crate::error::{sdk_error, unexpected};

/// Sparse GSI of instances by name: hash `instances` (always `"all"`), range `instance_name`.
pub const INDEX_INSTANCES_BY_NAME: &str = "instances-by-name";

mod a {
    pub const INSTANCES: &str = "instances";
    pub const ID: &str = "instance_id";
    pub const NAME: &str = "instance_name";
    pub const SERVER: &str = "instance_server";
    pub const REPOSITORY: &str = "image_repository";
    pub const TAG: &str = "image_tag";
    pub const DIGEST: &str = "image_digest";
    pub const STATE: &str = "instance_state";
    pub const OWNER: &str = "owner";
    pub const ENV: &str = "env";
    pub const RESTARTS: &str = "restart_count";
    pub const TASK: &str = "task";
    pub const EP_HOST: &str = "endpoint_host";
    pub const EP_PORT: &str = "endpoint_port";
    pub const EP_PATH: &str = "endpoint_path";
    pub const FAILURE: &str = "failure";
    pub const CREATED: &str = "instance_created_at";
    pub const UPDATED: &str = "updated_at";
    pub const STOPPED: &str = "stopped_at";
}

/// The value of `instances` on every instance item.
const ALL: &str = "all";

fn instance_key(id: &InstanceId) -> String {
    format!("#instance#{id}")
}

fn name_key(name: &InstanceName) -> String {
    format!("#instance-name#{name}")
}

fn key(k: String) -> HashMap<String, AttributeValue> {
    HashMap::from([(attr::SESSION_ID.to_owned(), s(k))])
}

fn env_value(env: &InstanceEnv) -> AttributeValue {
    AttributeValue::M(env.exposed().map(|(k, v)| (k.to_owned(), s(v))).collect())
}

/// The attributes an update may change, with `None` for optional ones to remove.
fn mutable_attributes(i: &Instance) -> Vec<(&'static str, Option<AttributeValue>)> {
    let ep = i.endpoint.as_ref();
    vec![
        (a::REPOSITORY, Some(s(i.image.repository()))),
        (a::TAG, Some(s(i.image.tag().as_str()))),
        (a::DIGEST, Some(s(i.image.digest().as_str()))),
        (a::STATE, Some(s(i.state.as_str()))),
        (a::OWNER, i.owner.as_ref().map(|o| s(o.as_str()))),
        (a::ENV, Some(env_value(&i.env))),
        (a::RESTARTS, Some(n(i.restart_count))),
        (a::TASK, i.task.as_ref().map(|t| s(t.as_str()))),
        (a::EP_HOST, ep.map(|e| s(e.host.as_str()))),
        (a::EP_PORT, ep.map(|e| n(e.port))),
        (a::EP_PATH, ep.map(|e| s(e.path.as_str()))),
        (a::FAILURE, i.failure.as_deref().map(s)),
        (a::UPDATED, Some(ms(i.updated_at))),
        (a::STOPPED, i.stopped_at.map(ms)),
    ]
}

fn item(i: &Instance) -> Item {
    let mut item = Item::from([
        (attr::SESSION_ID.to_owned(), s(instance_key(&i.id))),
        (a::INSTANCES.to_owned(), s(ALL)),
        (a::ID.to_owned(), s(i.id.as_str())),
        (a::NAME.to_owned(), s(i.name.as_str())),
        (a::SERVER.to_owned(), s(i.server_id.as_str())),
        (a::CREATED.to_owned(), ms(i.created_at)),
        (attr::VERSION.to_owned(), n(i.version)),
    ]);
    for (name, value) in mutable_attributes(i) {
        if let Some(v) = value {
            item.insert(name.to_owned(), v);
        }
    }
    item
}

fn from_item(item: &Item) -> Result<Instance> {
    let id = get_s(item, a::ID).unwrap_or("?").to_owned();
    let bad = |what: String| unexpected("dynamodb", "decode", Some(id.clone()), what);
    let req = |name: &str| get_s(item, name).ok_or_else(|| bad(format!("instance without {name}")));
    let time = |name: &str| get_n(item, name).and_then(chrono::DateTime::from_timestamp_millis);
    let decode = || -> Result<Instance> {
        let env = match item.get(a::ENV) {
            Some(AttributeValue::M(m)) => InstanceEnv::from_exposed(
                m.iter()
                    .map(|(k, v)| {
                        Ok((
                            k.clone(),
                            v.as_s()
                                .map_err(|_| bad(format!("env {k} is not a string")))?
                                .clone(),
                        ))
                    })
                    .collect::<Result<Vec<(String, String)>>>()?,
            )?,
            _ => InstanceEnv::new(),
        };
        let endpoint = match (
            get_s(item, a::EP_HOST),
            get_n(item, a::EP_PORT),
            get_s(item, a::EP_PATH),
        ) {
            (Some(host), Some(port), Some(path)) => Some(Endpoint::new(
                host,
                u16::try_from(port).map_err(|_| bad("endpoint port out of range".into()))?,
                path,
            )?),
            _ => None,
        };
        Ok(Instance {
            id: InstanceId::new(req(a::ID)?)?,
            name: InstanceName::new(req(a::NAME)?)?,
            server_id: ServerId::new(req(a::SERVER)?)?,
            image: ImageRef::new(
                req(a::REPOSITORY)?,
                ImageTag::new(req(a::TAG)?)?,
                ImageDigest::new(req(a::DIGEST)?)?,
            )?,
            state: req(a::STATE)?.parse()?,
            owner: get_s(item, a::OWNER).map(PrincipalId::new).transpose()?,
            env,
            restart_count: get_n(item, a::RESTARTS)
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            task: get_s(item, a::TASK).map(TaskHandle::new).transpose()?,
            endpoint,
            failure: get_s(item, a::FAILURE).map(str::to_owned),
            created_at: time(a::CREATED)
                .ok_or_else(|| bad("instance without creation time".into()))?,
            updated_at: time(a::UPDATED)
                .ok_or_else(|| bad("instance without update time".into()))?,
            stopped_at: time(a::STOPPED),
            version: super::codec::version(item),
        })
    };
    decode().map_err(|e| match e {
        e @ Error::Backend { .. } => e,
        other => bad(format!("stored instance is not valid: {other}")),
    })
}

/// Whether the cancellation reason at `i` is a failed condition.
fn condition_failed(
    t: &aws_sdk_dynamodb::types::error::TransactionCanceledException,
    i: usize,
) -> bool {
    t.cancellation_reasons().get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
}

impl DynamoServerRepository {
    async fn get_instance_item(&self, id: &InstanceId) -> Result<Option<Item>> {
        self.get_item(
            &self.tables.sessions,
            (attr::SESSION_ID.to_owned(), s(instance_key(id))),
            id.as_str(),
        )
        .await
    }

    pub(super) async fn insert_instance_item(&self, instance: &Instance) -> Result<Instance> {
        let mut stored = instance.clone();
        stored.version = 1;
        let not_exists = |put: aws_sdk_dynamodb::types::builders::PutBuilder| {
            put.table_name(&self.tables.sessions)
                .condition_expression("attribute_not_exists(#k)")
                .expression_attribute_names("#k", attr::SESSION_ID)
                .build()
                .map_err(|e| build_err("TransactWriteItems", e))
        };
        let record = not_exists(Put::builder().set_item(Some(item(&stored))))?;
        let claim = not_exists(
            Put::builder()
                .item(attr::SESSION_ID, s(name_key(&stored.name)))
                .item(a::ID, s(stored.id.as_str())),
        )?;
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(record).build())
            .transact_items(TransactWriteItem::builder().put(claim).build())
            .send()
            .await;
        let err = match res {
            Ok(_) => return Ok(stored),
            Err(e) => e,
        };
        if let Some(
            aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t),
        ) = err.as_service_error()
        {
            if condition_failed(t, 0) {
                return Err(Error::AlreadyExists {
                    kind: EntityKind::Instance,
                    id: stored.id.to_string(),
                });
            }
            if condition_failed(t, 1) {
                return Err(Error::AlreadyExists {
                    kind: EntityKind::Instance,
                    id: format!("named {}", stored.name),
                });
            }
        }
        Err(sdk_error(
            "dynamodb",
            "TransactWriteItems",
            Some(stored.id.to_string()),
            err,
        ))
    }

    pub(super) async fn get_instance_record(&self, id: &InstanceId) -> Result<Instance> {
        match self.get_instance_item(id).await? {
            Some(item) => from_item(&item),
            None => Err(Error::not_found(EntityKind::Instance, id)),
        }
    }

    pub(super) async fn get_instance_record_by_name(
        &self,
        name: &InstanceName,
    ) -> Result<Instance> {
        let missing = || Error::not_found(EntityKind::Instance, name);
        let claim = self
            .get_item(
                &self.tables.sessions,
                (attr::SESSION_ID.to_owned(), s(name_key(name))),
                name.as_str(),
            )
            .await?
            .ok_or_else(missing)?;
        let id = InstanceId::new(get_s(&claim, a::ID).ok_or_else(missing)?)?;
        match self.get_instance_item(&id).await? {
            // A claim without its instance is a delete in progress: the name is gone.
            Some(item) => from_item(&item),
            None => Err(missing()),
        }
    }

    pub(super) async fn list_instance_records(
        &self,
        after: Option<InstanceName>,
        limit: usize,
    ) -> Result<Vec<Instance>> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut req = self
            .client
            .query()
            .table_name(&self.tables.sessions)
            .index_name(INDEX_INSTANCES_BY_NAME)
            .expression_attribute_names("#i", a::INSTANCES)
            .expression_attribute_values(":all", s(ALL))
            .scan_index_forward(true);
        req = match &after {
            Some(after) => req
                .key_condition_expression("#i = :all AND #n > :after")
                .expression_attribute_names("#n", a::NAME)
                .expression_attribute_values(":after", s(after.as_str())),
            None => req.key_condition_expression("#i = :all"),
        };
        loop {
            let page_limit = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let page = req
                .clone()
                .limit(page_limit)
                .send()
                .await
                .map_err(|e| sdk_error("dynamodb", "Query", None, e))?;
            for item in page.items() {
                out.push(from_item(item)?);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => req = req.set_exclusive_start_key(Some(k)),
                _ => return Ok(out),
            }
        }
    }

    pub(super) async fn update_instance_record(&self, instance: &Instance) -> Result<Instance> {
        let mut set = vec!["#v = :nv".to_owned()];
        let mut remove = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.sessions)
            .set_key(Some(key(instance_key(&instance.id))))
            .condition_expression("attribute_exists(#k) AND #v = :v")
            .expression_attribute_names("#k", attr::SESSION_ID)
            .expression_attribute_names("#v", attr::VERSION)
            .expression_attribute_values(":v", n(instance.version))
            .expression_attribute_values(":nv", n(instance.version + 1));
        for (i, (name, value)) in mutable_attributes(instance).into_iter().enumerate() {
            req = req.expression_attribute_names(format!("#a{i}"), name);
            match value {
                Some(v) => {
                    set.push(format!("#a{i} = :a{i}"));
                    req = req.expression_attribute_values(format!(":a{i}"), v);
                }
                None => remove.push(format!("#a{i}")),
            }
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let res = req
            .update_expression(expr)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match res {
            // The stored item, identity attributes included: an update never changes those.
            Ok(out) => from_item(&out.attributes.unwrap_or_default()),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => Err(match c.item() {
                    None => Error::not_found(EntityKind::Instance, &instance.id),
                    Some(_) => Error::Conflict {
                        kind: EntityKind::Instance,
                        id: instance.id.to_string(),
                        expected: instance.version,
                    },
                }),
                _ => Err(sdk_error(
                    "dynamodb",
                    "UpdateItem",
                    Some(instance.id.to_string()),
                    e,
                )),
            },
        }
    }

    pub(super) async fn delete_instance_record(&self, id: &InstanceId) -> Result<bool> {
        let Some(current) = self.get_instance_item(id).await? else {
            return Ok(false);
        };
        let name = InstanceName::new(get_s(&current, a::NAME).ok_or_else(|| {
            unexpected(
                "dynamodb",
                "decode",
                Some(id.to_string()),
                "instance without name",
            )
        })?)?;
        let record = Delete::builder()
            .table_name(&self.tables.sessions)
            .set_key(Some(key(instance_key(id))))
            .condition_expression("attribute_exists(#k)")
            .expression_attribute_names("#k", attr::SESSION_ID)
            .build()
            .map_err(|e| build_err("TransactWriteItems", e))?;
        // The claim goes only if it is still this instance's.
        let claim = Delete::builder()
            .table_name(&self.tables.sessions)
            .set_key(Some(key(name_key(&name))))
            .condition_expression("attribute_not_exists(#k) OR #i = :id")
            .expression_attribute_names("#k", attr::SESSION_ID)
            .expression_attribute_names("#i", a::ID)
            .expression_attribute_values(":id", s(id.as_str()))
            .build()
            .map_err(|e| build_err("TransactWriteItems", e))?;
        let res = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().delete(record).build())
            .transact_items(TransactWriteItem::builder().delete(claim).build())
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                // Deleted meanwhile by somebody else.
                Some(
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t),
                ) if condition_failed(t, 0) => Ok(false),
                _ => Err(sdk_error(
                    "dynamodb",
                    "TransactWriteItems",
                    Some(id.to_string()),
                    e,
                )),
            },
        }
    }
}

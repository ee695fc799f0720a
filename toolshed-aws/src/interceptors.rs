//! SDK interceptors: counting calls per operation (and how many of them ran one after another),
//! recording request and response bodies (tests checking what reaches AWS), and adding a fixed
//! header to every request (e.g. moto's `x-moto-account-id`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::{Intercept, SharedInterceptor};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};

/// One finished call.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// `Service.Operation`, e.g. `ECS.RunTask`.
    pub operation: String,
    /// When it started.
    pub started: Instant,
    /// When it finished (all retries included).
    pub finished: Instant,
}

#[derive(Debug, Clone, Copy)]
struct StartedAt(Instant);

impl Storable for StartedAt {
    type Storer = StoreReplace<Self>;
}

/// Counts operations (not HTTP attempts) on every client it is added to.
///
/// [`CallCounter::sequential_round_trips`] is the longest chain of calls where each started after
/// the previous one finished: calls issued concurrently count once.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    calls: Arc<Mutex<Vec<CallRecord>>>,
}

impl CallCounter {
    /// A new, empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// As an interceptor for [`crate::AwsAdaptersBuilder::interceptor`] or a client config.
    pub fn interceptor(&self) -> SharedInterceptor {
        SharedInterceptor::new(self.clone())
    }

    /// Forgets every recorded call.
    pub fn reset(&self) {
        self.lock().clear();
    }

    /// Every finished call, in finishing order.
    pub fn calls(&self) -> Vec<CallRecord> {
        self.lock().clone()
    }

    /// Calls per operation.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for c in self.lock().iter() {
            *out.entry(c.operation.clone()).or_insert(0) += 1;
        }
        out
    }

    /// How many calls of `operation` (`Service.Operation`) finished.
    pub fn count(&self, operation: &str) -> usize {
        self.lock()
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// Total finished calls.
    pub fn total(&self) -> usize {
        self.lock().len()
    }

    /// The longest chain of strictly sequential calls.
    pub fn sequential_round_trips(&self) -> usize {
        let mut calls = self.calls();
        calls.sort_by_key(|c| c.finished);
        // chain[i]: longest chain ending with call i (interval scheduling DP; n is small).
        let mut chain = vec![1usize; calls.len()];
        for i in 0..calls.len() {
            for j in 0..i {
                if calls[j].finished <= calls[i].started {
                    chain[i] = chain[i].max(chain[j] + 1);
                }
            }
        }
        chain.into_iter().max().unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CallRecord>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "toolshed-call-counter"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(StartedAt(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let finished = Instant::now();
        let started = cfg.load::<StartedAt>().map_or(finished, |s| s.0);
        let operation = cfg.load::<Metadata>().map_or_else(
            || "unknown".to_owned(),
            |m| format!("{}.{}", m.service(), m.name()),
        );
        self.lock().push(CallRecord {
            operation,
            started,
            finished,
        });
        Ok(())
    }
}

/// Adds one fixed header to every request, e.g. `x-moto-account-id` to isolate tests in their
/// own moto account.
#[derive(Debug, Clone)]
pub struct StaticHeader {
    name: &'static str,
    value: String,
}

impl StaticHeader {
    /// A header to add.
    pub fn new(name: &'static str, value: impl Into<String>) -> Self {
        Self {
            name,
            value: value.into(),
        }
    }

    /// As an interceptor.
    pub fn interceptor(self) -> SharedInterceptor {
        SharedInterceptor::new(self)
    }
}

impl Intercept for StaticHeader {
    fn name(&self) -> &'static str {
        "toolshed-static-header"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        context
            .request_mut()
            .headers_mut()
            .insert(self.name, self.value.clone());
        Ok(())
    }
}

/// One request or response body, as sent or received.
#[derive(Debug, Clone)]
pub struct RecordedBody {
    /// `Service.Operation`, e.g. `ECS.RunTask`.
    pub operation: String,
    /// Whether this is the response (otherwise the request).
    pub response: bool,
    /// The body as text (lossy UTF-8); empty for streaming bodies.
    pub text: String,
}

/// Records every request and response body of the clients it is added to, so a test can check
/// what reached AWS and what came back. It keeps whatever the bodies hold (secret values
/// included): for tests only, never in a service.
#[derive(Debug, Clone, Default)]
pub struct BodyRecorder {
    bodies: Arc<Mutex<Vec<RecordedBody>>>,
}

impl BodyRecorder {
    /// A new, empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// As an interceptor.
    pub fn interceptor(&self) -> SharedInterceptor {
        SharedInterceptor::new(self.clone())
    }

    /// Every recorded body, in order.
    pub fn bodies(&self) -> Vec<RecordedBody> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn push(&self, cfg: &ConfigBag, response: bool, bytes: Option<&[u8]>) {
        let operation = cfg.load::<Metadata>().map_or_else(
            || "unknown".to_owned(),
            |m| format!("{}.{}", m.service(), m.name()),
        );
        let text = bytes.map(String::from_utf8_lossy).unwrap_or_default();
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(RecordedBody {
                operation,
                response,
                text: text.into_owned(),
            });
    }
}

impl Intercept for BodyRecorder {
    fn name(&self) -> &'static str {
        "toolshed-body-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.push(cfg, false, context.request().body().bytes());
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.push(cfg, true, context.response().body().bytes());
        Ok(())
    }
}

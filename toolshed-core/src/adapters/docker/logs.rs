//! Container logs of instances, sanitised: tail, since, follow.

use bollard::query_parameters::LogsOptionsBuilder;
use futures::stream::BoxStream;
use futures::StreamExt;

use super::error::DockerError;
use super::runner::DockerTaskRunner;
use super::sanitize::sanitize_lines;
use crate::domain::{TaskHandle, Timestamp};
use crate::error::{EntityKind, Error, Result};

/// Most lines a `tail` may ask for.
pub const MAX_TAIL: usize = crate::ports::MAX_LOG_TAIL;

/// Which log lines to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// The last N lines (`None`: all).
    pub tail: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<Timestamp>,
    /// Keep streaming new lines until the container stops.
    pub follow: bool,
}

impl DockerTaskRunner {
    /// Log lines (stdout and stderr) of a managed container, with ANSI escape sequences and
    /// control characters stripped. Lines are split per engine frame; the engine frames output
    /// per write, so a line written in one call is one item.
    ///
    /// # Errors
    /// `InvalidInput` for a tail above [`MAX_TAIL`]; `NotFound` (kind `Task`) for an unknown or
    /// unmanaged container.
    pub async fn logs(
        &self,
        task: &TaskHandle,
        query: LogQuery,
    ) -> Result<BoxStream<'static, Result<String>>> {
        if query.tail.is_some_and(|t| t > MAX_TAIL) {
            return Err(Error::invalid(
                "tail",
                format!("must be at most {MAX_TAIL}"),
            ));
        }
        if self.inspect(task).await?.is_none() {
            return Err(Error::not_found(EntityKind::Task, task));
        }
        let tail = query
            .tail
            .map_or_else(|| "all".to_owned(), |t| t.to_string());
        let since = query
            .since
            .map_or(0, |t| i32::try_from(t.timestamp()).unwrap_or(i32::MAX));
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(query.follow)
            .tail(&tail)
            .since(since)
            .build();
        let id = task.to_string();
        let stream = self
            .docker()
            .logs(task.as_str(), Some(opts))
            .map(move |item| match item {
                Ok(out) => Ok(sanitize_lines(&out.to_string())),
                Err(e) => Err(DockerError::from(e).into_error("Logs", Some(id.clone()))),
            })
            .flat_map(|r| match r {
                Ok(lines) => futures::stream::iter(lines.into_iter().map(Ok).collect::<Vec<_>>()),
                Err(e) => futures::stream::iter(vec![Err(e)]),
            });
        Ok(stream.boxed())
    }
}

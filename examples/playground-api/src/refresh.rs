//! The status refresh worker: every half status freshness, the tasks of live sessions whose
//! observation is ageing are described in batches and their records renewed, so the API's
//! status polls answer from records instead of asking the runner.

use anyhow::bail;
use tokio::task::JoinHandle;
use toolshed_core::services::{RefreshLimits, Toolshed};
use tracing::info;

/// The setting that turns the worker off (`off`) or on (`on`, the default).
pub const ENV_STATUS_REFRESHER: &str = "TOOLSHED_STATUS_REFRESHER";

/// Whether the environment (read through `lookup`) asks for the worker: on unless
/// [`ENV_STATUS_REFRESHER`] is `off` (e.g. when another process refreshes on a tight enough
/// schedule).
///
/// # Errors
/// A value other than `on` or `off`.
pub fn status_refresher_from(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<bool> {
    match lookup(ENV_STATUS_REFRESHER)
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .as_deref()
    {
        None | Some("on") => Ok(true),
        Some("off") => Ok(false),
        Some(other) => bail!("{ENV_STATUS_REFRESHER} must be `on` or `off`, not {other:?}"),
    }
}

/// The running worker; dropping it stops it.
#[derive(Debug)]
pub struct StatusRefreshWorker(JoinHandle<()>);

impl StatusRefreshWorker {
    /// Starts the worker on `toolshed`'s status refresher; the first refresh happens at once.
    pub fn start(toolshed: &Toolshed) -> Self {
        let refresher = toolshed.status_refresher();
        info!(
            period_ms = refresher.schedule_period().as_millis() as u64,
            "status refresher running"
        );
        Self(tokio::spawn(async move {
            refresher
                .refresh_on_schedule(RefreshLimits::default())
                .await;
        }))
    }
}

impl Drop for StatusRefreshWorker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: Option<&str>) -> anyhow::Result<bool> {
        status_refresher_from(|name| {
            assert_eq!(name, ENV_STATUS_REFRESHER);
            value.map(str::to_owned)
        })
    }

    #[test]
    fn on_unless_turned_off() {
        assert!(read(None).unwrap());
        assert!(read(Some("")).unwrap());
        assert!(read(Some("on")).unwrap());
        assert!(!read(Some(" OFF ")).unwrap());
        let err = read(Some("sometimes")).unwrap_err().to_string();
        assert!(err.contains(ENV_STATUS_REFRESHER), "{err}");
    }
}

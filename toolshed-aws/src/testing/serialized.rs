//! A moto server of our own whose requests are serialized.
//!
//! moto's server is threaded and its DynamoDB transactions take no lock, so two concurrent
//! `TransactWriteItems` can both pass a condition (measured: 5 of 20 concurrent creates passed a
//! cap of 3). DynamoDB itself serializes conflicting transactions; a moto that handles one request
//! at a time gives the same guarantee, so the concurrency checks of the conformance suite test
//! our conditions rather than moto's thread safety.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"
import os, sys, threading, time
parent = os.getppid()
def watchdog():
    # Exit with the test process: it holds this server in a static and never stops it.
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=watchdog, daemon=True).start()
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()
def serialized(environ, start_response):
    with lock:
        return list(app(environ, start_response))
run_simple("127.0.0.1", int(sys.argv[1]), serialized, threaded=True, request_handler=MotoRequestHandler)
"#;

/// A serialized moto server, a child process of the test; killed (by its own pid) on drop, and
/// exits by itself when the test process ends.
#[derive(Debug)]
pub struct SerializedMoto {
    child: Child,
    /// Where it listens (`http://127.0.0.1:<port>`).
    pub endpoint: String,
}

impl Drop for SerializedMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static SHARED: tokio::sync::OnceCell<Option<SerializedMoto>> = tokio::sync::OnceCell::const_new();

/// The endpoint of the test process's serialized moto, started on first use.
pub async fn shared_endpoint() -> Option<String> {
    SHARED
        .get_or_init(SerializedMoto::start)
        .await
        .as_ref()
        .map(|m| m.endpoint.clone())
}

impl SerializedMoto {
    /// Starts one with `TOOLSHED_TEST_PYTHON` (a Python with moto installed), or `None` (after
    /// printing why) when unset.
    ///
    /// # Panics
    /// When the variable is unset but `TOOLSHED_REQUIRE_BACKENDS=1`, or the server cannot be
    /// spawned or does not answer within 30 s.
    pub async fn start() -> Option<Self> {
        let python = match std::env::var("TOOLSHED_TEST_PYTHON") {
            Ok(p) if !p.is_empty() => p,
            _ => {
                if std::env::var("TOOLSHED_REQUIRE_BACKENDS").as_deref() == Ok("1") {
                    panic!("TOOLSHED_TEST_PYTHON is not set but TOOLSHED_REQUIRE_BACKENDS=1");
                }
                println!("skipped: TOOLSHED_TEST_PYTHON is not set (no venv with moto)");
                return None;
            }
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(python)
            .args(["-c", SCRIPT, &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto");
        let me = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::Client::new();
        loop {
            let ready = http
                .get(format!("{}/moto-api/data.json", me.endpoint))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Some(me);
            }
            assert!(
                Instant::now() < deadline,
                "serialized moto did not start in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

//! Shared harness of the end-to-end suites: the real control plane (from `KUBECONFIG`, started
//! by `hack/with-control-plane.sh`), one namespace per test, and the emulator, operator and
//! receiver as separate processes that are killed when the test ends, pass or fail.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, Config};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use ivy_webhook_operator::crd::WebhookSubscription;

pub const API_KEY: &str = "e2e-api-key";

/// The cluster, or `None` (the test is skipped with a notice) when no control plane is
/// configured. `make test` sets `IVY_E2E_REQUIRED=1`, which turns a missing cluster into a
/// failure so the suite can never silently pass without running.
pub async fn cluster() -> Option<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        assert!(
            std::env::var_os("IVY_E2E_REQUIRED").is_none(),
            "IVY_E2E_REQUIRED is set but KUBECONFIG is not: run through `make test`"
        );
        eprintln!("skipping: no KUBECONFIG (run `make test` for the end-to-end suite)");
        return None;
    }
    let config = Config::infer().await.expect("kubeconfig");
    Some(Client::try_from(config).expect("kube client"))
}

/// Directory of the built binaries (`target/debug`), found from this test executable.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch directory removed at the end of the test.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ivy-e2e-")
        .tempdir()
        .expect("tempdir")
}

/// Runs kubectl (from PATH, i.e. the built control plane's) and returns (success, stdout, stderr).
pub async fn kubectl(args: &[&str]) -> (bool, String, String) {
    kubectl_stdin(args, None).await
}

pub async fn kubectl_stdin(args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new("kubectl");
    command
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("kubectl on PATH");
    if let Some(input) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).await.expect("write stdin");
        drop(pipe);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("kubectl timed out")
        .expect("kubectl ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `kubectl apply -f -` of `yaml` in `namespace`; panics with kubectl's message on failure.
pub async fn apply(namespace: &str, yaml: &str) {
    let (ok, out, err) = kubectl_stdin(&["apply", "-n", namespace, "-f", "-"], Some(yaml)).await;
    assert!(ok, "kubectl apply failed: {out}{err}");
}

/// Applies the committed CRD and waits until it is served.
pub async fn install_crd() {
    let path = repo_root().join("crds");
    let (ok, out, err) = kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        path.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "CRD apply failed: {out}{err}");
    let (ok, out, err) = kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/webhooksubscriptions.webhooks.ivy.dev",
    ])
    .await;
    assert!(ok, "CRD not established: {out}{err}");
}

/// A namespace of its own for one test; deleted (without waiting) when dropped.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn create(client: &Client, prefix: &str) -> Self {
        let name = format!(
            "{prefix}-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        Self { name }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::env::var_os("IVY_E2E_KEEP_NAMESPACES").is_some() {
            return;
        }
        // Finalizers of remaining resources need a running operator; strip them so the
        // namespace can go away after the test.
        let name = self.name.clone();
        let _ = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "for r in $(kubectl get ivywh -n {name} -o name 2>/dev/null); do kubectl patch -n {name} $r --type=merge -p '{{\"metadata\":{{\"finalizers\":null}}}}' >/dev/null 2>&1; done; kubectl delete ns {name} --wait=false >/dev/null 2>&1"
            ))
            .status();
    }
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A child process with its output captured to a log file, killed when dropped.
pub struct Process {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Process {
    /// Starts `program` with stdout+stderr to `log`; returns once it printed a line
    /// containing `ready_marker` (whose text after the marker is returned).
    pub async fn start(
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: PathBuf,
        ready_marker: Option<&str>,
    ) -> (Self, String) {
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.clone())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for stream in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(stderr),
        ] {
            let tx = tx.clone();
            let log = log.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut file = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .await
                    .expect("log file");
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = file.write_all(format!("{line}\n").as_bytes()).await;
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let mut found = String::new();
        if let Some(marker) = ready_marker {
            let wait = async {
                while let Some(line) = rx.recv().await {
                    if let Some(pos) = line.find(marker) {
                        return Some(line[pos + marker.len()..].trim().to_owned());
                    }
                }
                None
            };
            match tokio::time::timeout(Duration::from_secs(60), wait).await {
                Ok(Some(rest)) => found = rest,
                _ => panic!(
                    "{name} did not print {marker:?}; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ),
            }
        }
        (
            Self {
                child,
                log,
                name: name.to_owned(),
            },
            found,
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// SIGKILL, like a crash or an OOM kill.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// SIGTERM and wait for the exit code.
    pub async fn terminate(&mut self) -> Option<i32> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => {
                let _ = self.child.kill().await;
                None
            }
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A failing test shows what its processes said; a passing one stays quiet.
        if std::thread::panicking() {
            let text = self.log_text();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(80)..];
            eprintln!(
                "----- last {} lines of {} ({}) -----",
                tail.len(),
                self.name,
                self.log.display()
            );
            for line in tail {
                eprintln!("{line}");
            }
        }
    }
}

/// `ivy-emulator` as a separate process.
pub struct Emulator {
    pub process: Process,
    pub base_url: String,
    http: reqwest::Client,
}

impl Emulator {
    pub async fn start(dir: &Path, extra: &[&str]) -> Self {
        let mut args: Vec<String> = [
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            API_KEY,
            "--plain-http-to-loopback",
            "--retry-schedule",
            "200ms,400ms,800ms",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let program = PathBuf::from(env!("CARGO_BIN_EXE_ivy-emulator"));
        let (process, rest) = Process::start(
            "ivy-emulator",
            &program,
            &args,
            &[],
            dir.join("emulator.log"),
            Some("listening on "),
        )
        .await;
        Self {
            process,
            base_url: rest.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn admin_get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}/admin/{path}", self.base_url))
            .send()
            .await
            .expect("admin request")
            .json()
            .await
            .expect("admin json")
    }

    /// Every subscription the emulator holds (with secrets).
    pub async fn subscriptions(&self) -> Vec<Value> {
        self.admin_get("subscriptions")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The subscription with this id (in any dialect's form).
    pub async fn subscription(&self, id: &str) -> Option<Value> {
        let response = self
            .http
            .get(format!("{}/admin/subscriptions/{id}", self.base_url))
            .send()
            .await
            .expect("admin request");
        if response.status().is_success() {
            Some(response.json().await.expect("json"))
        } else {
            None
        }
    }

    pub async fn deliveries(&self) -> Vec<Value> {
        self.admin_get("deliveries")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// How many requests with `method` matched `route` (the emulator's route template).
    pub async fn request_count(&self, method: &str, route: &str) -> u64 {
        self.admin_get("requests")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|r| r["method"] == method && r["route"] == route)
            .map(|r| r["count"].as_u64().unwrap_or(0))
            .sum()
    }

    /// How many requests of `operation` (create, get, update, delete, list, list-page, trigger)
    /// the emulator served in any dialect, whatever their status.
    pub async fn operation_count(&self, operation: &str) -> u64 {
        self.admin_get("operations")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|c| c["operation"] == operation)
            .map(|c| c["count"].as_u64().unwrap_or(0))
            .sum()
    }

    pub async fn set_idempotency(&self, enabled: bool) {
        let response = self
            .http
            .put(format!("{}/admin/idempotency", self.base_url))
            .json(&json!({"enabled": enabled}))
            .send()
            .await
            .expect("admin request");
        assert!(response.status().is_success());
    }

    pub async fn app_signing_secret(&self) -> String {
        self.admin_get("app-signing-secret").await["signing_secret"]
            .as_str()
            .expect("app secret")
            .to_owned()
    }

    /// Sends a catalogue event to one subscription through the admin API.
    pub async fn send_event(&self, subscription_id: &str, event_type: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/admin/events", self.base_url))
            .json(&json!({"type": event_type, "subscription_id": subscription_id}))
            .send()
            .await
            .expect("admin request");
        assert!(
            response.status().is_success(),
            "send_event: {}",
            response.status()
        );
        response.json().await.expect("json")
    }

    /// Triggers the `test` event through the rest dialect's own endpoint, as a user would
    /// (again after a proxy 502, which the `proxy-502` quirk sends on every Nth request).
    pub async fn trigger_test_rest(&self, id: &str) {
        let mut status = reqwest::StatusCode::BAD_GATEWAY;
        for _ in 0..3 {
            status = self
                .http
                .post(format!("{}/webhook/{id}/test", self.base_url))
                .header("X-Ivy-Api-Key", API_KEY)
                .send()
                .await
                .expect("trigger")
                .status();
            if status != reqwest::StatusCode::BAD_GATEWAY {
                break;
            }
        }
        assert!(status.is_success(), "trigger: {status}");
    }

    /// Changes a subscription behind the operator's back through the rest API.
    pub async fn rest_update(&self, id: &str, body: Value) {
        let response = self
            .http
            .put(format!("{}/webhook/{id}", self.base_url))
            .header("X-Ivy-Api-Key", API_KEY)
            .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
            .json(&body)
            .send()
            .await
            .expect("update");
        assert!(
            response.status().is_success(),
            "rest update: {}",
            response.status()
        );
    }
}

/// Options of one operator process.
pub struct OperatorOptions {
    pub dialect: &'static str,
    pub resync: &'static str,
    pub grace: &'static str,
    pub app_secret: Option<String>,
    pub leader_election: bool,
    pub lease_name: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub watch_namespace: bool,
    pub extra_args: Vec<String>,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        Self {
            dialect: "rest",
            resync: "3s",
            grace: "4s",
            app_secret: None,
            leader_election: false,
            lease_name: None,
            kubeconfig: None,
            watch_namespace: true,
            extra_args: Vec::new(),
        }
    }
}

/// `ivy-webhook-operator run` as a separate process, watching one namespace.
pub struct Operator {
    pub process: Process,
    pub metrics_addr: String,
}

impl Operator {
    pub async fn start(
        dir: &Path,
        namespace: &str,
        ivy_base_url: &str,
        options: &OperatorOptions,
        log_name: &str,
    ) -> Self {
        let key_file = dir.join("api-key");
        std::fs::write(&key_file, API_KEY).expect("key file");
        let mut args: Vec<String> = vec![
            "run".into(),
            "--ivy-base-url".into(),
            ivy_base_url.to_owned(),
            "--ivy-api-key-file".into(),
            key_file.display().to_string(),
            "--ivy-dialect".into(),
            options.dialect.into(),
            "--metrics-addr".into(),
            "127.0.0.1:0".into(),
            "--resync-interval".into(),
            options.resync.into(),
            "--rotation-grace-period".into(),
            options.grace.into(),
            "--ivy-request-timeout".into(),
            "5s".into(),
            "--log-level".into(),
            "info,ivy_webhook_operator=debug".into(),
        ];
        if options.watch_namespace {
            args.extend(["--watch-namespace".into(), namespace.into()]);
        }
        if let Some(secret) = &options.app_secret {
            let file = dir.join("app-signing-secret");
            std::fs::write(&file, secret).expect("app secret file");
            args.extend([
                "--app-signing-secret-file".into(),
                file.display().to_string(),
            ]);
        }
        if options.leader_election {
            args.extend([
                "--leader-election".into(),
                "--lease-namespace".into(),
                namespace.into(),
                "--lease-duration".into(),
                "6s".into(),
                "--pod-name".into(),
                log_name.into(),
            ]);
            if let Some(lease) = &options.lease_name {
                args.extend(["--lease-name".into(), lease.clone()]);
            }
        }
        args.extend(options.extra_args.iter().cloned());
        let mut env = Vec::new();
        if let Some(kubeconfig) = &options.kubeconfig {
            env.push(("KUBECONFIG", kubeconfig.display().to_string()));
        }
        let program = PathBuf::from(env!("CARGO_BIN_EXE_ivy-webhook-operator"));
        let (process, rest) = Process::start(
            log_name,
            &program,
            &args,
            &env,
            dir.join(format!("{log_name}.log")),
            Some("metrics and health server listening"),
        )
        .await;
        let metrics_addr = rest
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap_or_default()
            .to_owned();
        Self {
            process,
            metrics_addr,
        }
    }

    /// Status code of `/readyz`.
    pub async fn readyz(&self) -> u16 {
        reqwest::get(format!("http://{}/readyz", self.metrics_addr))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://{}/metrics", self.metrics_addr))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }
}

/// Mirrors a Secret into files in `dir` the way the kubelet projects a Secret volume
/// (one file per key, replaced atomically), until dropped.
pub struct SecretMount {
    pub dir: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl SecretMount {
    pub fn start(client: &Client, namespace: &str, name: &str, dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).expect("mount dir");
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let name = name.to_owned();
        let target = dir.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(Some(secret)) = api.get_opt(&name).await {
                    let data = secret.data.unwrap_or_default();
                    for (key, value) in &data {
                        let tmp = target.join(format!(".{key}.tmp"));
                        if std::fs::write(&tmp, &value.0).is_ok() {
                            let _ = std::fs::rename(&tmp, target.join(key));
                        }
                    }
                    // Keys that disappeared from the Secret disappear from the mount.
                    if let Ok(entries) = std::fs::read_dir(&target) {
                        for entry in entries.flatten() {
                            let file = entry.file_name().to_string_lossy().into_owned();
                            if !file.starts_with('.') && !data.contains_key(&file) {
                                let _ = std::fs::remove_file(entry.path());
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Self { dir, task }
    }
}

impl Drop for SecretMount {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The example receiver (`examples/receiver.rs`) as a process reading the mounted files.
pub struct Receiver {
    pub process: Process,
    pub addr: String,
}

impl Receiver {
    pub async fn start(dir: &Path, secret_dir: &Path) -> Self {
        let program = target_dir().join("examples").join("receiver");
        assert!(
            program.exists(),
            "{} is missing: run `cargo build --example receiver` (make test does)",
            program.display()
        );
        let args = vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--secret-dir".to_owned(),
            secret_dir.display().to_string(),
        ];
        let (process, rest) = Process::start(
            "receiver",
            &program,
            &args,
            &[],
            dir.join("receiver.log"),
            Some("listening on http://"),
        )
        .await;
        Self {
            process,
            addr: rest,
        }
    }

    /// The https URL a WebhookSubscription names for this receiver (the emulator delivers it
    /// over plain http because it is on loopback).
    pub fn url(&self) -> String {
        format!("https://{}/webhooks/ivy", self.addr)
    }

    /// Verification lines the receiver printed so far.
    pub fn results(&self) -> Vec<Value> {
        self.process
            .log_text()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("verified").is_some())
            .collect()
    }
}

/// The resource, read fresh.
pub async fn get_sub(client: &Client, namespace: &str, name: &str) -> Option<WebhookSubscription> {
    let api: Api<WebhookSubscription> = Api::namespaced(client.clone(), namespace);
    api.get_opt(name).await.expect("get WebhookSubscription")
}

/// The Secret's data as text.
pub async fn secret_data(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Option<BTreeMap<String, String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api.get_opt(name).await.expect("get Secret")?;
    Some(
        secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .collect(),
    )
}

pub async fn delete_sub(client: &Client, namespace: &str, name: &str) {
    let api: Api<WebhookSubscription> = Api::namespaced(client.clone(), namespace);
    let _ = api.delete(name, &DeleteParams::default()).await;
}

/// A WebhookSubscription manifest.
pub fn manifest(name: &str, url: &str, events: &[&str], extra_spec: &str) -> String {
    let events = events
        .iter()
        .map(|e| format!("\"{e}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "apiVersion: webhooks.ivy.dev/v1alpha1\nkind: WebhookSubscription\nmetadata:\n  name: {name}\nspec:\n  url: {url}\n  events: [{events}]\n  description: e2e {name}\n{extra_spec}"
    )
}

/// Waits for `kubectl wait --for=condition=Ready`.
pub async fn wait_ready(namespace: &str, name: &str, timeout: &str) {
    let (ok, out, err) = kubectl(&[
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        &format!("--timeout={timeout}"),
        &format!("webhooksubscriptions.webhooks.ivy.dev/{name}"),
    ])
    .await;
    if !ok {
        let (_, yaml, _) = kubectl(&["get", "-n", namespace, "ivywh", name, "-o", "yaml"]).await;
        panic!("{name} not Ready: {out}{err}\n{yaml}");
    }
}

/// The subscriptions at the emulator carrying this resource's marker.
pub async fn marked_for(emulator: &Emulator, uid: &str) -> Vec<Value> {
    let marker = format!("[ivywh:{uid}]");
    emulator
        .subscriptions()
        .await
        .into_iter()
        .filter(|s| {
            s["description"]
                .as_str()
                .is_some_and(|d| d.ends_with(&marker))
        })
        .collect()
}

/// A Deployment in `namespace` that stands in for a receiver: its pods never run (the test
/// control plane has no scheduler), but its pod template is what restart on rotation patches.
pub async fn apply_receiver_deployment(namespace: &str, name: &str) {
    apply(
        namespace,
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n        - name: receiver\n          image: registry.invalid/receiver:1\n"
        ),
    )
    .await;
}

/// The `webhooks.ivy.dev/secret-hash` annotation of a Deployment's pod template, if any.
pub async fn deployment_secret_hash(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Option<String> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), namespace);
    let deployment = api.get(name).await.expect("get Deployment");
    deployment
        .spec?
        .template
        .metadata?
        .annotations?
        .get("webhooks.ivy.dev/secret-hash")
        .cloned()
}

/// The reasons of the Events about the WebhookSubscription `name`.
pub async fn event_reasons(namespace: &str, name: &str) -> Vec<String> {
    let (ok, out, err) = kubectl(&["get", "events", "-n", namespace, "-o", "json"]).await;
    assert!(ok, "{err}");
    let events: Value = serde_json::from_str(&out).unwrap();
    events["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|e| {
            e["involvedObject"]["kind"] == "WebhookSubscription"
                && e["involvedObject"]["name"] == name
        })
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

/// A CA made for one test, and a server certificate it signed for 127.0.0.1, all PEM.
pub struct TestCa {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

impl TestCa {
    pub fn new() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        Self {
            ca_pem: ca.pem(),
            server_cert_pem: server.pem(),
            server_key_pem: server_key.serialize_pem(),
        }
    }
}

impl Emulator {
    /// The emulator serving HTTPS with a certificate of `ca`; the admin API is reached through
    /// a client that trusts `ca`.
    pub async fn start_tls(dir: &Path, ca: &TestCa, extra: &[&str]) -> Self {
        let cert = dir.join("emulator.crt");
        let key = dir.join("emulator.key");
        std::fs::write(&cert, &ca.server_cert_pem).unwrap();
        std::fs::write(&key, &ca.server_key_pem).unwrap();
        let cert = cert.display().to_string();
        let key = key.display().to_string();
        let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
        args.extend_from_slice(extra);
        let mut emulator = Self::start(dir, &args).await;
        assert!(
            emulator.base_url.starts_with("https://"),
            "{}",
            emulator.base_url
        );
        emulator.http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap();
        emulator
    }
}

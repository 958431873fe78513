//! hako-cri-client: does to containerd's CRI plugin what kubelet does for a pod, with one runtime
//! handler (a Kubernetes RuntimeClass), and checks the results. integration/cri.sh runs it once
//! per scenario and handler:
//!
//!     hako-cri-client SOCKET HANDLER SCENARIO
//!
//! Environment: CRI_IMAGE (the workload image, already in containerd's store), CRI_CGROUP_PARENT
//! (the pods' cgroup parent, cgroupfs driver), CRI_LOG_DIR (the pods' log directory).
//! Pods use the host's network namespace (no CNI), everything else as kubelet does.
//! Exit status 0 when the scenario passed, 1 with the reason on stderr otherwise.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

const MIB: i64 = 1 << 20;

struct Cri {
    rt: RuntimeServiceClient<Channel>,
    img: ImageServiceClient<Channel>,
    handler: String,
    image: String,
    cgroup_parent: String,
    log_dir: PathBuf,
    /// Sandboxes this run made: stopped and removed at the end, also on failure.
    pods: Vec<String>,
}

fn say(msg: impl AsRef<str>) {
    eprintln!("cri: {}", msg.as_ref());
}

impl Cri {
    async fn connect(socket: String, handler: String) -> Result<Cri> {
        let path = socket.clone();
        let channel =
            Endpoint::try_from("http://[::]:50051")?
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?))
                    }
                }))
                .await
                .with_context(|| format!("connect to {socket}"))?;
        let env = |k: &str| std::env::var(k).with_context(|| format!("${k} is not set"));
        Ok(Cri {
            rt: RuntimeServiceClient::new(channel.clone()),
            img: ImageServiceClient::new(channel),
            handler,
            image: env("CRI_IMAGE")?,
            cgroup_parent: env("CRI_CGROUP_PARENT")?,
            log_dir: PathBuf::from(env("CRI_LOG_DIR")?),
            pods: Vec::new(),
        })
    }

    fn sandbox_config(&self, name: &str) -> PodSandboxConfig {
        let uid = format!("{name}-{}-{}", self.handler, std::process::id());
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: format!("{name}-{}", self.handler),
                uid: uid.clone(),
                namespace: "hako-int".into(),
                attempt: 0,
            }),
            hostname: String::new(),
            log_directory: self.log_dir.join(&uid).to_string_lossy().into_owned(),
            linux: Some(LinuxPodSandboxConfig {
                // kubelet's cgroupfs layout: one cgroup per pod, the containers below it.
                cgroup_parent: format!("/{}/pod{uid}", self.cgroup_parent),
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Container as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox with this handler, as kubelet does for a pod whose RuntimeClass names it.
    async fn run_pod(&mut self, name: &str) -> Result<(String, PodSandboxConfig)> {
        let config = self.sandbox_config(name);
        std::fs::create_dir_all(&config.log_directory)?;
        let id = self
            .rt
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: self.handler.clone(),
            })
            .await
            .context("RunPodSandbox")?
            .into_inner()
            .pod_sandbox_id;
        self.pods.push(id.clone());
        let st = self
            .rt
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: false,
            })
            .await
            .context("PodSandboxStatus")?
            .into_inner()
            .status
            .context("PodSandboxStatus: no status")?;
        ensure!(
            st.state == PodSandboxState::SandboxReady as i32,
            "sandbox {id} is not ready: state {}",
            st.state
        );
        ensure!(
            st.runtime_handler == self.handler,
            "sandbox {id} runs with handler {:?}, not {:?}",
            st.runtime_handler,
            self.handler
        );
        say(format!(
            "pod {name}: sandbox {id} ready (handler {})",
            self.handler
        ));
        Ok((id, config))
    }

    /// kubelet's imagePullPolicy IfNotPresent: ImageStatus, and PullImage only when missing (the
    /// image was imported into the store; there is no registry to pull from).
    async fn ensure_image(&mut self) -> Result<String> {
        let spec = ImageSpec {
            image: self.image.clone(),
            ..Default::default()
        };
        let st = self
            .img
            .image_status(ImageStatusRequest {
                image: Some(spec.clone()),
                verbose: false,
            })
            .await
            .context("ImageStatus")?
            .into_inner();
        if let Some(i) = st.image {
            ensure!(
                i.repo_tags.contains(&self.image),
                "ImageStatus: {} not among the tags {:?}",
                self.image,
                i.repo_tags
            );
            return Ok(i.id);
        }
        say(format!("image {} not present: PullImage", self.image));
        let r = self
            .img
            .pull_image(PullImageRequest {
                image: Some(spec),
                ..Default::default()
            })
            .await
            .context("PullImage")?
            .into_inner();
        Ok(r.image_ref)
    }

    async fn create_start(
        &mut self,
        pod: &str,
        pod_config: &PodSandboxConfig,
        name: &str,
        command: &[&str],
        resources: Option<LinuxContainerResources>,
    ) -> Result<String> {
        let image = self.ensure_image().await?;
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image,
                ..Default::default()
            }),
            command: command.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(LinuxContainerConfig {
                resources,
                security_context: Some(LinuxContainerSecurityContext {
                    namespace_options: pod_config
                        .linux
                        .as_ref()
                        .and_then(|l| l.security_context.as_ref())
                        .and_then(|s| s.namespace_options.clone()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let id = self
            .rt
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(pod_config.clone()),
            })
            .await
            .context("CreateContainer")?
            .into_inner()
            .container_id;
        self.rt
            .start_container(StartContainerRequest {
                container_id: id.clone(),
            })
            .await
            .context("StartContainer")?;
        say(format!("container {name}: {id} started"));
        Ok(id)
    }

    async fn status(&mut self, id: &str) -> Result<(ContainerStatus, HashMap<String, String>)> {
        let r = self
            .rt
            .container_status(ContainerStatusRequest {
                container_id: id.into(),
                verbose: true,
            })
            .await
            .context("ContainerStatus")?
            .into_inner();
        Ok((r.status.context("ContainerStatus: no status")?, r.info))
    }

    /// ContainerStatus until the container exited, as kubelet's relist does. The limit only
    /// guards against a hang; nothing is asserted about the time.
    async fn wait_exited(&mut self, id: &str) -> Result<ContainerStatus> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (st, _) = self.status(id).await?;
            if st.state == ContainerState::ContainerExited as i32 {
                return Ok(st);
            }
            if Instant::now() > deadline {
                bail!("container {id} did not exit: state {}", st.state);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The host pid of a running container (containerd's verbose status info).
    async fn pid(&mut self, id: &str) -> Result<i32> {
        let (st, info) = self.status(id).await?;
        ensure!(
            st.state == ContainerState::ContainerRunning as i32,
            "container {id} is not running: state {} ({} {})",
            st.state,
            st.reason,
            st.message
        );
        let info = info
            .get("info")
            .context("ContainerStatus: no verbose info")?;
        let v: serde_json::Value = serde_json::from_str(info)?;
        v["pid"]
            .as_i64()
            .map(|p| p as i32)
            .with_context(|| format!("no pid in {info}"))
    }

    async fn exec(&mut self, id: &str, cmd: &[&str]) -> Result<ExecSyncResponse> {
        Ok(self
            .rt
            .exec_sync(ExecSyncRequest {
                container_id: id.into(),
                cmd: cmd.iter().map(|s| s.to_string()).collect(),
                timeout: 30,
            })
            .await
            .with_context(|| format!("ExecSync {cmd:?}"))?
            .into_inner())
    }

    async fn exec_out(&mut self, id: &str, cmd: &[&str]) -> Result<String> {
        let r = self.exec(id, cmd).await?;
        ensure!(
            r.exit_code == 0,
            "ExecSync {cmd:?}: exit {} ({})",
            r.exit_code,
            String::from_utf8_lossy(&r.stderr)
        );
        Ok(String::from_utf8_lossy(&r.stdout).trim().to_string())
    }

    /// StopPodSandbox then RemovePodSandbox, kubelet's order when a pod is deleted; both must
    /// leave no sandbox behind.
    async fn stop_remove(&mut self, pod: &str) -> Result<()> {
        self.rt
            .stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: pod.into(),
            })
            .await
            .context("StopPodSandbox")?;
        let st = self
            .rt
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: pod.into(),
                verbose: false,
            })
            .await
            .context("PodSandboxStatus after stop")?
            .into_inner();
        let state = st.status.map(|s| s.state).unwrap_or(-1);
        ensure!(
            state == PodSandboxState::SandboxNotready as i32,
            "sandbox {pod} after StopPodSandbox: state {state}, not NOTREADY"
        );
        for c in st.containers_statuses {
            ensure!(
                c.state == ContainerState::ContainerExited as i32,
                "container {} still in state {} after StopPodSandbox",
                c.id,
                c.state
            );
        }
        self.rt
            .remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: pod.into(),
            })
            .await
            .context("RemovePodSandbox")?;
        self.pods.retain(|p| p != pod);
        let left = self
            .rt
            .list_pod_sandbox(ListPodSandboxRequest { filter: None })
            .await
            .context("ListPodSandbox")?
            .into_inner()
            .items;
        ensure!(
            !left.iter().any(|p| p.id == pod),
            "sandbox {pod} still listed after RemovePodSandbox"
        );
        say(format!("sandbox {pod} stopped and removed"));
        Ok(())
    }

    async fn cleanup(&mut self) {
        for pod in std::mem::take(&mut self.pods) {
            let _ = self
                .rt
                .stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: pod.clone(),
                })
                .await;
            let _ = self
                .rt
                .remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: pod,
                })
                .await;
        }
    }
}

/// The host path of `file` in `pid`'s cgroup for a v1 `controller`, or the v2 file on a pure v2
/// host (`v2_file`).
fn host_cgroup_file(pid: i32, controller: &str, file: &str, v2_file: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    for line in text.lines() {
        let mut it = line.splitn(3, ':');
        let (_, ctrls, path) = (it.next(), it.next().unwrap_or(""), it.next().unwrap_or(""));
        if ctrls.split(',').any(|c| c == controller) {
            return Ok(PathBuf::from(format!(
                "/sys/fs/cgroup/{controller}{path}/{file}"
            )));
        }
    }
    let v2 = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no cgroup")?;
    Ok(PathBuf::from(format!("/sys/fs/cgroup{v2}/{v2_file}")))
}

fn read_trim(p: &PathBuf) -> Result<String> {
    Ok(std::fs::read_to_string(p)
        .with_context(|| format!("read {}", p.display()))?
        .trim()
        .to_string())
}

// ---- scenarios ----

/// A pod whose container prints and exits 3: ContainerStatus reports EXITED, exit code 3,
/// reason Error, and the CRI log file holds its output.
async fn sc_run_exit_code(c: &mut Cri) -> Result<()> {
    let (pod, cfg) = c.run_pod("exit").await?;
    let id = c
        .create_start(
            &pod,
            &cfg,
            "exit",
            &["sh", "-c", "echo hello from $0; exit 3"],
            None,
        )
        .await?;
    let st = c.wait_exited(&id).await?;
    ensure!(st.exit_code == 3, "exit code {}, want 3", st.exit_code);
    ensure!(st.reason == "Error", "reason {:?}, want Error", st.reason);
    let log = std::fs::read_to_string(&st.log_path)
        .with_context(|| format!("read the container log {}", st.log_path))?;
    ensure!(log.contains("hello from sh"), "container log: {log:?}");
    c.stop_remove(&pod).await
}

/// ExecSync in a running container: stdout, stderr and the exit code come back; the process
/// runs in the container's pid namespace (the container's init is pid 1 there).
async fn sc_exec_sync(c: &mut Cri) -> Result<()> {
    let (pod, cfg) = c.run_pod("exec").await?;
    let id = c
        .create_start(&pod, &cfg, "sleeper", &["sleep", "1000"], None)
        .await?;
    let r = c
        .exec(&id, &["sh", "-c", "echo out; echo err >&2; exit 4"])
        .await?;
    ensure!(
        r.stdout == b"out\n",
        "stdout {:?}",
        String::from_utf8_lossy(&r.stdout)
    );
    ensure!(
        r.stderr == b"err\n",
        "stderr {:?}",
        String::from_utf8_lossy(&r.stderr)
    );
    ensure!(r.exit_code == 4, "exit code {}, want 4", r.exit_code);
    let init = c.exec_out(&id, &["cat", "/proc/1/cmdline"]).await?;
    ensure!(init.starts_with("sleep"), "pid 1 is {init:?}, not sleep");
    let r = c.exec(&id, &["no-such-cmd"]).await;
    match r {
        Ok(r) => ensure!(
            r.exit_code != 0,
            "ExecSync of a missing executable succeeded"
        ),
        Err(e) => ensure!(
            format!("{e:#}").contains("executable file not found"),
            "ExecSync of a missing executable: {e:#}"
        ),
    }
    c.stop_remove(&pod).await
}

/// kubelet's resources for a container with limits: the host's cgroup files and what the
/// container sees, and its oom_score_adj.
async fn sc_resource_limits(c: &mut Cri) -> Result<()> {
    let (pod, cfg) = c.run_pod("limits").await?;
    let res = LinuxContainerResources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 64 * MIB,
        oom_score_adj: 900,
        ..Default::default()
    };
    let id = c
        .create_start(&pod, &cfg, "limited", &["sleep", "1000"], Some(res))
        .await?;
    let pid = c.pid(&id).await?;
    let v1 = host_cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")?;
    ensure!(
        v1.to_string_lossy()
            .contains(&format!("/{}/pod", c.cgroup_parent)),
        "cgroup {} is not under the pod's parent",
        v1.display()
    );
    let checks = [
        (
            "memory",
            "memory.limit_in_bytes",
            "memory.max",
            (64 * MIB).to_string(),
            (64 * MIB).to_string(),
        ),
        (
            "cpu",
            "cpu.cfs_quota_us",
            "cpu.max",
            "50000".into(),
            "50000 100000".into(),
        ),
        (
            "cpu",
            "cpu.cfs_period_us",
            "cpu.max",
            "100000".into(),
            "50000 100000".into(),
        ),
        ("cpu", "cpu.shares", "cpu.weight", "512".into(), "20".into()),
    ];
    for (ctl, f1, f2, want1, want2) in checks {
        let p = host_cgroup_file(pid, ctl, f1, f2)?;
        let want = if p.ends_with(f1) { want1 } else { want2 };
        let got = read_trim(&p)?;
        ensure!(got == want, "{}: {got}, want {want}", p.display());
    }
    let adj = read_trim(&PathBuf::from(format!("/proc/{pid}/oom_score_adj")))?;
    ensure!(adj == "900", "oom_score_adj {adj}, want 900");
    let inside = c
        .exec_out(&id, &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"])
        .await?;
    ensure!(
        inside == (64 * MIB).to_string(),
        "memory limit inside: {inside}"
    );
    c.stop_remove(&pod).await
}

/// A container over its memory limit is OOM-killed: EXITED, exit code 137, reason OOMKilled.
async fn sc_oom_killed(c: &mut Cri) -> Result<()> {
    let (pod, cfg) = c.run_pod("oom").await?;
    let res = LinuxContainerResources {
        memory_limit_in_bytes: 32 * MIB,
        ..Default::default()
    };
    // busybox sh keeps the 100 MB string in memory.
    let hog = "x=$(yes | head -c 100000000); echo survived ${#x}";
    let id = c
        .create_start(&pod, &cfg, "hog", &["sh", "-c", hog], Some(res))
        .await?;
    let st = c.wait_exited(&id).await?;
    ensure!(
        st.reason == "OOMKilled",
        "reason {:?} (exit code {}), want OOMKilled",
        st.reason,
        st.exit_code
    );
    ensure!(st.exit_code == 137, "exit code {}, want 137", st.exit_code);
    c.stop_remove(&pod).await
}

/// StopPodSandbox with a container still running stops it (and the sandbox), RemovePodSandbox
/// removes both.
async fn sc_stop_remove_running(c: &mut Cri) -> Result<()> {
    let (pod, cfg) = c.run_pod("stop").await?;
    let id = c
        .create_start(&pod, &cfg, "sleeper", &["sleep", "1000"], None)
        .await?;
    let pid = c.pid(&id).await?;
    c.stop_remove(&pod).await?;
    ensure!(
        !PathBuf::from(format!("/proc/{pid}")).exists()
            || read_trim(&PathBuf::from(format!("/proc/{pid}/stat")))
                .map(|s| s.contains(") Z"))
                .unwrap_or(true),
        "container process {pid} still alive after RemovePodSandbox"
    );
    let left =
        c.rt.list_containers(ListContainersRequest { filter: None })
            .await?
            .into_inner()
            .containers;
    ensure!(
        !left.iter().any(|x| x.id == id),
        "container {id} still listed after RemovePodSandbox"
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 4 {
        eprintln!("usage: hako-cri-client SOCKET HANDLER SCENARIO");
        std::process::exit(2);
    }
    let (socket, handler, scenario) = (args[1].clone(), args[2].clone(), args[3].as_str());
    let mut c = match Cri::connect(socket, handler).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("FAIL: {e:#}");
            std::process::exit(1);
        }
    };
    let r = match scenario {
        "run_exit_code" => sc_run_exit_code(&mut c).await,
        "exec_sync" => sc_exec_sync(&mut c).await,
        "resource_limits" => sc_resource_limits(&mut c).await,
        "oom_killed" => sc_oom_killed(&mut c).await,
        "stop_remove_running" => sc_stop_remove_running(&mut c).await,
        s => Err(anyhow::anyhow!("unknown scenario {s}")),
    };
    c.cleanup().await;
    if let Err(e) = r {
        eprintln!("FAIL: {e:#}");
        std::process::exit(1);
    }
}

//! A deploy step's own IPA error reaches the conductor unchanged, through the real API: a
//! `write_image` whose download exceeds `ipa-image-download-max-duration` fails with IPA's
//! `ImageDownloadTimeoutError`, code 408 and message, as IPA re-raises `RESTError`s.
//!
//! Needs root and loop devices (the install device is a loop device over a test file).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use hardware_managers::generic::backend::StepBackend;
use hardware_managers::{Chain, HardwareManager, HardwareResult, Node, StepContext, SupportLevel};
use serde_json::{Map, Value, json};

use super::tests::{TOKEN, call, router_over};
use crate::config::{Config, Flags, KernelParams};
use crate::context::AgentContext;
use crate::deploy::prepare::Deployer;
use crate::deploy::steps::AgentSteps;
use crate::devices::Devices;
use crate::logbuf::LogBuffer;
use crate::power::RecordingPower;
use crate::state::AgentState;
use crate::testutil::LoopDevice;

/// Offers the agent's own steps and a fixed install device.
#[derive(Debug)]
struct DeployTarget {
    device: String,
    steps: Arc<AgentSteps>,
}

impl HardwareManager for DeployTarget {
    fn class_name(&self) -> String {
        "GenericHardwareManager".into()
    }
    fn evaluate_hardware_support(&self) -> SupportLevel {
        SupportLevel::GENERIC
    }
    fn get_os_install_device(&self, _node: Option<&Node>) -> HardwareResult<String> {
        Ok(self.device.clone())
    }
    fn execute_step(
        &self,
        name: &str,
        ctx: &StepContext,
        args: &Map<String, Value>,
    ) -> HardwareResult<Value> {
        self.steps.execute(name, ctx, args)
    }
}

/// An image server on 127.0.0.1 that answers each request with the headers and 64 KiB,
/// pauses `pause`, sends another 64 KiB, then holds the connection until the client goes away.
fn slow_server(pause: Duration) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        // Bounded: the test makes a handful of requests; the thread ends with the process.
        for conn in listener.incoming().take(16) {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut request = [0u8; 4096];
                let _ = conn.read(&mut request);
                let chunk = vec![0u8; 64 << 10];
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\n");
                let _ = conn.write_all(&chunk);
                std::thread::sleep(pause);
                let _ = conn.write_all(&chunk);
                let _ = conn.read(&mut request);
            });
        }
    });
    Ok(addr)
}

#[tokio::test]
async fn a_deploy_download_timeout_keeps_ipas_class_code_and_message() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let disk = LoopDevice::create(&dir.path().join("disk.img"), 16 << 20)?;
    let device = disk.path.display().to_string();
    let flags = Flags::parse_from(["ironic-agent", "--allow-device", device.as_str()]);
    let cmdline = format!(
        "ipa-agent-token={TOKEN} ipa-image-download-max-duration=1 \
         ipa-image-download-connection-retries=0 ipa-image-download-connection-retry-interval=0"
    );
    let config = Config::from_parts(&flags, KernelParams::parse(&cmdline))?;
    let state = AgentState::default();
    let allowed = config.allow_devices.clone();
    let chain = Chain::new_cyclic(|chain| {
        let devices = Devices::new(chain.clone(), allowed);
        let steps = AgentSteps::with(Deployer::new(devices, &config, &state), state.raid.clone());
        vec![Arc::new(DeployTarget {
            device: device.clone(),
            steps: Arc::new(steps),
        }) as Arc<dyn HardwareManager>]
    })?;
    let ctx = Arc::new(AgentContext::with_state(
        config,
        chain,
        Arc::new(RecordingPower::new(&dir.path().join("power"))),
        LogBuffer::new(1024),
        state,
    ));
    let app = router_over(crate::commands::registry(), ctx);

    let addr = slow_server(Duration::from_millis(2500))?;
    let body = json!({"name": "deploy.execute_deploy_step", "params": {
        "step": {"step": "write_image", "interface": "deploy", "priority": 80, "args": {
            "image_info": {
                "id": "slow-image",
                "urls": [format!("http://{addr}/slow.img")],
                "disk_format": "raw",
                "os_hash_algo": "sha256",
                "os_hash_value": "0".repeat(64),
            }}},
        "node": {"uuid": "n"}, "ports": []}});
    let (_, v) = call(
        &app,
        "POST",
        &format!("/v1/commands/?agent_token={TOKEN}&wait=true"),
        &body.to_string(),
    )
    .await?;
    assert_eq!(v["command_status"], "FAILED", "{v}");
    let error = &v["command_error"];
    assert_eq!(error["type"], "ImageDownloadTimeoutError", "{v}");
    assert_eq!(error["code"], 408, "{v}");
    assert_eq!(error["message"], "Image download timeout", "{v}");
    let details = error["details"].as_str().unwrap_or_default();
    assert!(details.contains("slow.img"), "{details}");
    Ok(())
}

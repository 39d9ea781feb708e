//! Pure translation of a plan into Docker Engine API requests (container create body, pull
//! options), kept apart from the I/O so the requests for things this machine cannot
//! exercise (GPUs, pulls by digest) are unit-tested.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceRequest, HostConfig, HostConfigLogConfig, Mount, MountType,
};
use bollard::query_parameters::CreateImageOptions;

use crate::mlcube::args::GpuRequest;
use crate::mlcube::plan::Plan;

/// Label every container cohort creates carries, with the run id as value (so leftovers can
/// be found and tests can check none is left).
pub const RUN_LABEL: &str = "org.cohort.run";

/// The create request for a planned task, by image id (never by tag).
pub fn container_body(plan: &Plan, image_id: &str, run_id: &str) -> ContainerCreateBody {
    let h = &plan.hardening;
    let inv = &plan.invocation;
    let mut env: Vec<String> = inv.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(h.env_added.iter().map(|(k, v)| format!("{k}={v}")));
    let labels = HashMap::from([
        (RUN_LABEL.to_string(), run_id.to_string()),
        ("org.cohort.cube".to_string(), plan.cube.clone()),
        ("org.cohort.task".to_string(), plan.task.clone()),
    ]);
    let mounts = h
        .mounts
        .iter()
        .map(|m| Mount {
            target: Some(m.container.clone()),
            source: Some(m.host.to_string_lossy().into_owned()),
            typ: Some(MountType::BIND),
            read_only: Some(m.read_only),
            ..Default::default()
        })
        .collect();
    let host_config = HostConfig {
        mounts: Some(mounts),
        network_mode: Some(h.network.clone()),
        cap_drop: Some(h.cap_drop.clone()),
        security_opt: Some(h.security_opt.clone()),
        readonly_rootfs: Some(h.read_only_rootfs),
        tmpfs: Some(h.tmpfs.iter().cloned().collect()),
        pids_limit: Some(h.pids_limit),
        auto_remove: Some(h.auto_remove),
        memory: h.memory,
        nano_cpus: h.nano_cpus,
        cpuset_cpus: h.cpuset_cpus.clone(),
        shm_size: h.shm_size,
        device_requests: h.gpus.as_ref().map(|g| vec![device_request(g)]),
        runtime: h.runtime.clone(),
        // cohort streams the output to its own capped log file; the daemon keeps no copy, so
        // a flooding task cannot fill the Engine's disk either.
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(image_id.to_string()),
        entrypoint: inv.entrypoint.clone(),
        // `docker run IMAGE` with no arguments sends no Cmd; keep that for Q1 entrypoints.
        cmd: (!inv.cmd.is_empty()).then(|| inv.cmd.clone()),
        env: Some(env),
        user: Some(h.user.clone()),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        tty: Some(false),
        open_stdin: Some(false),
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// `--gpus` as the Engine API's device request (what docker/cli sends).
pub fn device_request(g: &GpuRequest) -> DeviceRequest {
    DeviceRequest {
        driver: Some(g.driver.clone().unwrap_or_default()),
        count: Some(g.count),
        device_ids: (!g.device_ids.is_empty()).then(|| g.device_ids.clone()),
        capabilities: Some(g.capabilities.clone()),
        options: Some(g.options.iter().cloned().collect()),
    }
}

/// A reference split for `POST /images/create`: `repo@sha256:...` pulls that digest,
/// `repo:tag` that tag, a bare `repo` `latest`.
pub fn pull_options(reference: &str) -> CreateImageOptions {
    let (repo, tag) = match reference.split_once('@') {
        Some((repo, digest)) => (repo.to_string(), digest.to_string()),
        None => {
            let last_slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
            match reference[last_slash..].rfind(':') {
                Some(i) => (
                    reference[..last_slash + i].to_string(),
                    reference[last_slash + i + 1..].to_string(),
                ),
                None => (reference.to_string(), "latest".to_string()),
            }
        }
    };
    CreateImageOptions {
        from_image: Some(repo),
        tag: Some(tag),
        ..Default::default()
    }
}

/// True for `repo@sha256:<64 hex>`, the only pull references registered cubes use.
pub fn is_digest_reference(reference: &str) -> bool {
    crate::model::is_image_digest_reference(reference)
}

/// Image ids as `docker inspect` prints them (`sha256:<hex>`); a bare hex id gets the prefix.
pub fn normalize_image_id(id: &str) -> String {
    let id = id.trim();
    if id.starts_with("sha256:") {
        id.to_string()
    } else {
        format!("sha256:{id}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlcube::{CubeConfig, RunRequest, plan};
    use std::path::Path;

    fn gpu_plan(gpus: Option<&str>) -> Plan {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("mlcube.yaml"),
            "name: g\nplatform: {accelerator_count: 1}\ndocker: {image: 'x/y:1', gpu_args: '--gpus all --shm-size 2g --runtime=nvidia'}\n\
             tasks: {infer: {parameters: {inputs: {p: {type: file, default: p.yaml}}, outputs: {out: out/}}}}\n",
        )
        .unwrap();
        let cfg = CubeConfig::load(dir.path()).unwrap();
        let mut req = RunRequest::new("infer");
        req.options.gpus = gpus.map(str::to_string);
        req.options.memory = Some("1g".into());
        req.options.cpus = Some("1.5".into());
        req.options.cpuset = Some("0".into());
        plan(&cfg, &req, &|_| None, Path::new("/home/u")).unwrap()
    }

    #[test]
    fn gpus_become_device_requests() {
        let p = gpu_plan(None);
        let body = container_body(&p, "sha256:abc", "run1");
        let hc = body.host_config.unwrap();
        let dr = &hc.device_requests.unwrap()[0];
        assert_eq!(dr.count, Some(-1));
        assert_eq!(dr.capabilities, Some(vec![vec!["gpu".to_string()]]));
        assert_eq!(dr.driver.as_deref(), Some(""));
        assert_eq!(hc.shm_size, Some(2 << 30));
        assert_eq!(hc.runtime.as_deref(), Some("nvidia"));
        assert_eq!(hc.memory, Some(1 << 30));
        assert_eq!(hc.nano_cpus, Some(1_500_000_000));
        assert_eq!(hc.cpuset_cpus.as_deref(), Some("0"));

        // The command-line --gpus comes after gpu_args (Q7) and wins.
        let p = gpu_plan(Some("device=1"));
        assert_eq!(
            p.invocation.extra_run_args,
            [
                "--gpus",
                "all",
                "--shm-size",
                "2g",
                "--runtime=nvidia",
                "--gpus=device=1",
                "--memory=1g",
                "--cpuset-cpus=0"
            ]
        );
        let dr = &container_body(&p, "sha256:abc", "r")
            .host_config
            .unwrap()
            .device_requests
            .unwrap()[0];
        assert_eq!(dr.count, Some(0));
        assert_eq!(dr.device_ids, Some(vec!["1".to_string()]));
    }

    #[test]
    fn hardening_is_in_the_request() {
        let p = gpu_plan(None);
        let body = container_body(&p, "sha256:abc", "run1");
        assert_eq!(body.image.as_deref(), Some("sha256:abc"));
        assert_eq!(body.cmd.as_ref().unwrap()[0], "infer");
        assert_eq!(body.labels.as_ref().unwrap()[RUN_LABEL], "run1");
        assert!(
            body.env
                .as_ref()
                .unwrap()
                .contains(&"HOME=/tmp".to_string())
        );
        let (uid, gid) = crate::mlcube::container_user();
        assert_eq!(body.user.as_deref(), Some(format!("{uid}:{gid}").as_str()));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.security_opt, Some(vec!["no-new-privileges".to_string()]));
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(hc.auto_remove, Some(true));
        assert!(hc.tmpfs.unwrap().contains_key("/tmp"));
        assert_eq!(hc.pids_limit, Some(4096));
        let mounts = hc.mounts.unwrap();
        // workspace (p.yaml's folder) is read-only, out/ writable.
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].read_only, Some(true));
        assert_eq!(mounts[1].read_only, Some(false));
    }

    #[test]
    fn pull_requests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let o = pull_options(&format!("registry.example:5000/team/model@{d}"));
        assert_eq!(
            o.from_image.as_deref(),
            Some("registry.example:5000/team/model")
        );
        assert_eq!(o.tag.as_deref(), Some(d.as_str()));
        let o = pull_options("registry.example:5000/team/model:1.0");
        assert_eq!(
            (o.from_image.as_deref(), o.tag.as_deref()),
            (Some("registry.example:5000/team/model"), Some("1.0"))
        );
        let o = pull_options("registry.example:5000/model");
        assert_eq!(
            (o.from_image.as_deref(), o.tag.as_deref()),
            (Some("registry.example:5000/model"), Some("latest"))
        );
        assert!(is_digest_reference(&format!("x/y@{d}")));
        assert!(!is_digest_reference("x/y:1"));
        assert!(!is_digest_reference(&format!("@{d}")));
        assert_eq!(normalize_image_id("abc"), "sha256:abc");
    }
}

//! One table, both runners: the task specs ECS registers and the containers Docker creates carry
//! the same least-privilege defaults. Each row is a server's settings and an image user; each
//! column a property read back from what the runner would send (no engine, no AWS needed).

use aws_sdk_ecs::config::{BehaviorVersion, Credentials, Region};
use toolshed_aws::ecs::{EcsSettings, EcsTaskRunner};
use toolshed_core::adapters::docker::{container_config, RunnerConfig};
use toolshed_core::domain::{
    is_root_user, Egress, ImageDigest, ImageRef, ImageTag, ServerId, SessionId, TaskLabels,
    TaskPurpose, TaskResources, NON_ROOT_USER,
};
use toolshed_core::ports::TaskSpec;

/// What a runner's task spec grants, in the same words for both runners.
#[derive(Debug, PartialEq)]
struct Observed {
    /// The user set on the container (`None`: the image's own).
    user: Option<String>,
    read_only_root: bool,
    writable_tmp: bool,
    caps_dropped_all: bool,
    /// `None` where the runner has no such switch (Fargate).
    no_new_privileges: Option<bool>,
    task_role: bool,
    /// Whether the network the task is put on lets it connect out.
    egress_open: bool,
}

fn spec(resources: TaskResources) -> TaskSpec {
    let server_id = ServerId::new("table").unwrap();
    TaskSpec {
        server_id: server_id.clone(),
        image: ImageRef::new(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/toolshed",
            ImageTag::new("table-aaaaaaaaaaaa").unwrap(),
            ImageDigest::new(format!("sha256:{}", "ab".repeat(32))).unwrap(),
        )
        .unwrap(),
        container_port: 8000,
        mcp_path: "/mcp".to_owned(),
        resources,
        labels: TaskLabels {
            server_id,
            purpose: TaskPurpose::Playground {
                session_id: SessionId::new("s-00000001").unwrap(),
            },
            expires_at: chrono::Utc::now(),
        },
        idempotency_token: "s-00000001".to_owned(),
        env: Default::default(),
    }
}

fn ecs_runner() -> EcsTaskRunner {
    let config = aws_sdk_ecs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("eu-west-1"))
        .credentials_provider(Credentials::for_tests())
        .build();
    EcsTaskRunner::new(
        aws_sdk_ecs::Client::from_conf(config),
        EcsSettings {
            cluster: "playground".to_owned(),
            subnets: vec!["subnet-1".to_owned()],
            security_groups: vec!["sg-internet".to_owned()],
            no_egress_security_groups: vec!["sg-none".to_owned()],
            assign_public_ip: false,
            execution_role_arn: "arn:aws:iam::123456789012:role/exec".to_owned(),
            task_role_arn: Some("arn:aws:iam::123456789012:role/task".to_owned()),
            log_group: "/toolshed/tasks".to_owned(),
            log_region: "eu-west-1".to_owned(),
            family_prefix: "toolshed".to_owned(),
            deployment: toolshed_core::domain::DeploymentId::new("hardening").unwrap(),
        },
    )
}

/// ECS: the registered container definition, volumes, task role and security groups.
fn ecs(spec: &TaskSpec) -> Observed {
    let runner = ecs_runner();
    let parts = runner.task_definition_parts(spec).unwrap();
    let c = &parts.container;
    let tmp = c
        .mount_points()
        .iter()
        .find(|m| m.container_path() == Some("/tmp"));
    let writable_tmp = tmp.is_some_and(|m| {
        m.read_only() == Some(false) && parts.volumes.iter().any(|v| v.name() == m.source_volume())
    });
    let caps = c.linux_parameters().and_then(|l| l.capabilities());
    let groups = runner.security_groups(spec.resources.egress).unwrap();
    Observed {
        user: c.user().map(str::to_owned),
        read_only_root: c.readonly_root_filesystem() == Some(true),
        writable_tmp,
        caps_dropped_all: caps.is_some_and(|k| k.drop() == ["ALL"] && k.add().is_empty()),
        no_new_privileges: None,
        task_role: parts.task_role_arn.is_some(),
        egress_open: groups != ["sg-none"],
    }
}

/// Docker: the container create body.
fn docker(spec: &TaskSpec, image_user: Option<&str>) -> Observed {
    let config = RunnerConfig::new(toolshed_core::domain::DeploymentId::new("hardening").unwrap());
    let body = container_config(&config, spec, image_user);
    let host = body.host_config.clone().unwrap_or_default();
    let tmp = host.tmpfs.clone().unwrap_or_default();
    let env = body.env.clone().unwrap_or_default();
    Observed {
        user: body.user.clone(),
        read_only_root: host.readonly_rootfs == Some(true),
        writable_tmp: tmp
            .get("/tmp")
            .is_some_and(|o| o.split(',').any(|f| f == "rw")),
        caps_dropped_all: host.cap_drop == Some(vec!["ALL".to_owned()])
            && host.cap_add.as_ref().is_none_or(Vec::is_empty),
        no_new_privileges: Some(
            host.security_opt
                .unwrap_or_default()
                .iter()
                .any(|o| o == "no-new-privileges:true"),
        ),
        // A local container gets no cloud credentials: never a role, never AWS keys.
        task_role: env.iter().any(|e| e.starts_with("AWS_")),
        egress_open: host.network_mode.as_deref() != Some(config.no_egress_network.as_str())
            || host.port_bindings.is_some_and(|p| !p.is_empty()),
    }
}

#[test]
fn both_runners_apply_the_same_least_privilege_defaults() {
    let default = TaskResources::default();
    let root = TaskResources {
        run_as_root: true,
        ..default
    };
    let role = TaskResources {
        task_role: true,
        ..default
    };
    let sealed = TaskResources {
        egress: Egress::None,
        ..default
    };
    // (row, server settings, the image's user, runs as root?, task role on ECS?)
    let table: [(&str, TaskResources, Option<&str>, bool, bool); 7] = [
        ("defaults, image without USER", default, None, false, false),
        (
            "defaults, image USER root",
            default,
            Some("root"),
            false,
            false,
        ),
        (
            "defaults, image USER 0:0",
            default,
            Some("0:0"),
            false,
            false,
        ),
        (
            "defaults, image USER app",
            default,
            Some("app"),
            false,
            false,
        ),
        (
            "registered as root, image USER root",
            root,
            Some("root"),
            true,
            false,
        ),
        ("asks for the task role", role, None, false, true),
        ("egress none", sealed, None, false, false),
    ];
    for (row, resources, image_user, may_be_root, ecs_role) in table {
        let spec = spec(resources);
        for (runner, seen) in [("ecs", ecs(&spec)), ("docker", docker(&spec, image_user))] {
            let what = format!("{runner}, {row}: {seen:?}");
            // The user: never root unless the server was registered as needing it.
            let user = seen.user.as_deref();
            if may_be_root {
                assert!(user.is_none_or(is_root_user), "{what}");
            } else {
                let user = user.unwrap_or_else(|| panic!("a user must be set: {what}"));
                assert!(!is_root_user(user), "{what}");
                if image_user.is_none_or(is_root_user) || runner == "ecs" {
                    assert_eq!(user, NON_ROOT_USER, "{what}");
                }
            }
            assert!(seen.read_only_root, "read-only root: {what}");
            assert!(seen.writable_tmp, "writable /tmp: {what}");
            assert!(seen.caps_dropped_all, "all capabilities dropped: {what}");
            assert_ne!(seen.no_new_privileges, Some(false), "{what}");
            let want_role = ecs_role && runner == "ecs";
            assert_eq!(seen.task_role, want_role, "task role: {what}");
            assert_eq!(
                seen.egress_open,
                resources.egress == Egress::Internet,
                "egress: {what}"
            );
        }
        assert_eq!(
            docker(&spec, image_user).no_new_privileges,
            Some(true),
            "no-new-privileges locally: {row}"
        );
    }
}

#!/usr/bin/env python3
"""Runs the verification buildspec (terraform/modules/verification/buildspec.yml) for real.

CodeBuild itself cannot run here, so this plays its part: a real git repository checked out at a
commit, the real Docker engine, a real OCI registry (Debian's docker-registry) standing in for ECR,
and a stub `aws` command (ECR login, `describe-images` answered from the registry's API,
`s3 cp` from a local directory). Phases run the way CodeBuild runs them: one bash, variables kept
between commands, `post_build` after a failed `build` with CODEBUILD_BUILD_SUCCEEDING=0.

Cases: an HTTP server image is built, pushed as build-<serverId>-<sha12> and its digest printed
(and equal to the registry's); the daemon is logged in to the registry only after the repository's
(untrusted) `docker build` and before the push (a `docker` wrapper records each call and whether
credentials were stored at that moment); a tag without the `build-` prefix is refused; a retry of the same commit reports the stored digest without rebuilding;
a tag whose sha12 is not the checked-out commit is refused; a stdio server is wrapped with the
bridge (entrypoint + command in exec form, the bridge binary inside); a malformed stdio command
is refused; in a monorepo, servers in subfolders build from their own context and Dockerfile
into distinct images, build arguments reach the build verbatim (a hostile value is never run by
a shell), and contexts or Dockerfiles leading out of the repository (or the context) through
links, '..' or absolute paths are refused, as are reserved or malformed build arguments. A package
build (INLINE_DOCKERFILE_B64, no repository) runs no git, builds a context of exactly the given
Dockerfile, is tagged and labelled by the package fingerprint (a mismatch is refused), reports its
digest like a repository build, and refuses a hostile, malformed or oversized variable.

Needs TOOLSHED_TEST_DOCKER=1 and TOOLSHED_TEST_REGISTRY=127.0.0.1:PORT (set by scripts/test.sh);
without them it prints "skipped: <reason>" and exits 0, unless TOOLSHED_REQUIRE_BACKENDS=1.
Usage: check_buildspec.py [BUILDSPEC]   (default: the verification module's buildspec.yml)
Exit status: 0 when every case behaves, 1 otherwise.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILDSPEC = ROOT / "terraform" / "modules" / "verification" / "buildspec.yml"
# The verification module's default `stdio_bridge.entrypoint` (the mcp-stdio-bridge CLI).
BRIDGE_ENTRYPOINT = ["/toolshed/stdio-bridge", "--host", "0.0.0.0", "--port", "8000", "--"]

# The stub `aws` CLI: just what the buildspec calls.
AWS_STUB = r"""#!/usr/bin/env bash
set -euo pipefail
case "$1 $2" in
  "ecr get-login-password") echo "stub-token" ;;
  "ecr describe-images")
    shift 2
    repo="" tag=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --repository-name) repo=$2; shift 2 ;;
        --image-ids) tag=${2#imageTag=}; shift 2 ;;
        *) shift ;;
      esac
    done
    digest=$(curl -fsSI \
      -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://$STUB_REGISTRY/v2/$repo/manifests/$tag" 2>/dev/null \
      | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}') || true
    if [ -z "$digest" ]; then
      echo "An error occurred (ImageNotFoundException) when calling the DescribeImages operation" >&2
      exit 254
    fi
    echo "$digest" ;;
  "s3 cp")
    shift 2
    args=()
    for a in "$@"; do case "$a" in --*) ;; *) args+=("$a") ;; esac; done
    src=${args[0]#s3://}
    cp "$STUB_S3_DIR/$src" "${args[1]}" ;;
  *) echo "aws stub: unexpected call: $*" >&2; exit 2 ;;
esac
"""


# Records each docker call, with how many registry credentials were stored at that moment, then
# runs the real docker. REAL_DOCKER is substituted at run time.
DOCKER_WRAPPER = r"""#!/usr/bin/env bash
auths=$(jq -r '(.auths // {}) | length' "$DOCKER_CONFIG/config.json" 2>/dev/null || echo 0)
echo "$1 auths=${auths:-0}" >>"$STUB_DOCKER_LOG"
exec REAL_DOCKER "$@"
"""


# Records each git call of the buildspec (a package build must run none), then runs the real git.
GIT_WRAPPER = r"""#!/usr/bin/env bash
echo "$*" >>"$STUB_GIT_LOG"
exec REAL_GIT "$@"
"""


def skip_or_fail(reason: str) -> int:
    if os.environ.get("TOOLSHED_REQUIRE_BACKENDS") == "1":
        print(f"check_buildspec: FAILED: backend missing: {reason}", file=sys.stderr)
        return 1
    print(f"check_buildspec: skipped: {reason}")
    return 0


def phase_script(buildspec: dict) -> str:
    """One bash script running the phases like CodeBuild.

    Each command runs in a subshell (so its `exit` fails only that command, hence the phase) and
    hands its variables back to the next command, as CodeBuild's shell keeps them. A failed
    install/pre_build skips the later phases; a failed build still runs post_build with
    CODEBUILD_BUILD_SUCCEEDING=0.
    """
    phases = buildspec["phases"]
    lines = ["CODEBUILD_BUILD_SUCCEEDING=1", "__stopped=0", '__vars=$(mktemp)']
    for phase in ("install", "pre_build", "build", "post_build"):
        commands = (phases.get(phase) or {}).get("commands", [])
        if not commands:
            continue
        lines.append('if [ "$__stopped" = 0 ]; then')
        lines.append(f"  echo '[phase {phase}]'; __failed=0")
        for command in commands:
            lines.append('  if [ "$__failed" = 0 ]; then')
            # Only plain and exported scalars travel back (no readonly, special or harness variables).
            lines.append("    ( trap '__rc=$?; declare -p | grep -E \"^declare -[-x]+ [A-Za-z][A-Za-z0-9_]*=\" > \"$__vars\"; exit $__rc' EXIT")
            lines.append(command.rstrip("\n"))
            # Not `( ... ) || ...`: bash would ignore the command's own `set -e` there.
            lines.append("    )")
            lines.append('    __rc=$?')
            lines.append('    source "$__vars" 2>/dev/null || true')
            lines.append('    if [ "$__rc" != 0 ]; then __failed=1; fi')
            lines.append("  fi")
        lines.append('  if [ "$__failed" = 1 ]; then')
        lines.append(f"    echo '[phase {phase} FAILED]'; CODEBUILD_BUILD_SUCCEEDING=0")
        if phase in ("install", "pre_build"):
            lines.append("    __stopped=1")
        lines.append("  fi")
        lines.append("fi")
    lines.append('rm -f "$__vars"')
    lines.append('echo "[build succeeded: $CODEBUILD_BUILD_SUCCEEDING]"')
    lines.append('[ "$CODEBUILD_BUILD_SUCCEEDING" = 1 ]')
    return "\n".join(lines) + "\n"


class Harness:
    def __init__(self, registry: str, work: Path, buildspec: dict) -> None:
        self.registry = registry
        self.work = work
        self.script = phase_script(buildspec)
        self.run_id = uuid.uuid4().hex[:8]
        self.repo_name = f"toolshed-check-{self.run_id}/mcp-servers"
        self.local_tags: list[str] = []
        bin_dir = work / "bin"
        bin_dir.mkdir()
        stub = bin_dir / "aws"
        stub.write_text(AWS_STUB, encoding="utf-8")
        stub.chmod(0o755)
        wrapper = bin_dir / "docker"
        wrapper.write_text(DOCKER_WRAPPER.replace("REAL_DOCKER", shutil.which("docker") or "docker"), encoding="utf-8")
        wrapper.chmod(0o755)
        git_wrapper = bin_dir / "git"
        git_wrapper.write_text(GIT_WRAPPER.replace("REAL_GIT", shutil.which("git") or "git"), encoding="utf-8")
        git_wrapper.chmod(0o755)
        self.git_log = work / "git-calls.log"
        self.docker_log = work / "docker-calls.log"
        self.bin_dir = bin_dir
        self.s3_dir = work / "s3"
        (self.s3_dir / "artifacts" / "toolshed").mkdir(parents=True)
        bridge = self.s3_dir / "artifacts" / "toolshed" / "stdio-bridge"
        bridge.write_text("#!/bin/sh\necho bridge\n", encoding="utf-8")
        (work / "docker-config").mkdir()

    def source_repo(self, name: str, files: dict[str, str], links: dict[str, str] | None = None) -> tuple[Path, str]:
        repo = self.work / name
        repo.mkdir()
        for rel, content in files.items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).write_text(content, encoding="utf-8")
        for rel, target in (links or {}).items():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / rel).symlink_to(target)
        git = ["git", "-C", str(repo), "-c", "user.name=check", "-c", "user.email=check@example.invalid"]
        subprocess.run(git[:3] + ["init", "-q"], check=True)
        subprocess.run(git + ["add", "-A"], check=True)
        subprocess.run(git + ["commit", "-q", "-m", "server"], check=True)
        sha = subprocess.run(git[:3] + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
        return repo, sha

    def build(self, repo: Path, sha: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        base = {
            "PATH": f"{self.bin_dir}:{os.environ.get('PATH', '')}",
            "HOME": str(self.work),
            "DOCKER_CONFIG": str(self.work / "docker-config"),
            "AWS_REGION": "eu-west-1",
            "CODEBUILD_RESOLVED_SOURCE_VERSION": sha,
            "REPOSITORY_URI": f"{self.registry}/{self.repo_name}",
            "MCP_TRANSPORT": "http",
            "BRIDGE_ENTRYPOINT": json.dumps(BRIDGE_ENTRYPOINT),
            "DOCKERFILE": "Dockerfile",
            "STUB_REGISTRY": self.registry,
            "STUB_S3_DIR": str(self.s3_dir),
            "STUB_DOCKER_LOG": str(self.docker_log),
            "STUB_GIT_LOG": str(self.git_log),
        }
        base.update(env)
        self.docker_log.write_text("", encoding="utf-8")
        self.git_log.write_text("", encoding="utf-8")
        # Each build starts logged out, as a fresh CodeBuild container does.
        (self.work / "docker-config" / "config.json").unlink(missing_ok=True)
        if "IMAGE_TAG" in base:
            self.local_tags.append(f"{base['REPOSITORY_URI']}:{base['IMAGE_TAG']}")
            self.local_tags.append(f"toolshed-build/{base.get('SERVER_ID', 'x')}:{base['IMAGE_TAG']}")
        return subprocess.run(["bash", "-c", self.script], cwd=repo, env=base, capture_output=True, text=True, timeout=600)

    def docker_calls(self) -> list[tuple[str, int]]:
        """The docker subcommands of the last build, each with the credentials stored at the time."""
        calls = []
        for line in self.docker_log.read_text(encoding="utf-8").splitlines():
            command, _, auths = line.partition(" auths=")
            calls.append((command, int(auths or 0)))
        return calls

    def git_calls(self) -> list[str]:
        """The git commands the buildspec ran in the last build."""
        return self.git_log.read_text(encoding="utf-8").splitlines()

    def image_files(self, image: str, prefix: str) -> dict[str, bytes]:
        """The regular files under `prefix` of an image's file system, with their content."""
        container = subprocess.run(["docker", "create", image], capture_output=True, text=True, check=False).stdout.strip()
        if not container:
            return {}
        listing = subprocess.run(["docker", "export", container], capture_output=True, check=False).stdout
        subprocess.run(["docker", "rm", container], capture_output=True, check=False)
        files = {}
        with tarfile.open(fileobj=io.BytesIO(listing)) as tar:
            for member in tar.getmembers():
                if member.name.startswith(prefix) and member.isfile():
                    extracted = tar.extractfile(member)
                    files[member.name] = extracted.read() if extracted else b""
        return files

    def image_labels(self, image: str) -> dict[str, str]:
        inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=False)
        return (json.loads(inspect.stdout)[0]["Config"].get("Labels") or {}) if inspect.returncode == 0 else {}

    def registry_digest(self, tag: str) -> str:
        out = subprocess.run(
            ["curl", "-fsSI", "-H", "Accept: application/vnd.docker.distribution.manifest.v2+json",
             f"http://{self.registry}/v2/{self.repo_name}/manifests/{tag}"],
            capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.lower().startswith("docker-content-digest:"):
                return line.split(":", 1)[1].strip()
        return ""

    def cleanup(self) -> None:
        for tag in set(self.local_tags):
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


def printed(result: subprocess.CompletedProcess, key: str) -> str:
    for line in result.stdout.splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    return ""


def main() -> int:
    if os.environ.get("TOOLSHED_TEST_DOCKER") != "1":
        return skip_or_fail("TOOLSHED_TEST_DOCKER is not 1 (no Docker engine)")
    registry = os.environ.get("TOOLSHED_TEST_REGISTRY", "")
    if not registry:
        return skip_or_fail("TOOLSHED_TEST_REGISTRY is unset (no local registry)")
    try:
        import yaml
    except ImportError:
        print("check_buildspec: PyYAML is not installed", file=sys.stderr)
        return 1
    for tool in ("docker", "git", "jq", "curl"):
        if shutil.which(tool) is None:
            return skip_or_fail(f"{tool} is not installed")

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else BUILDSPEC
    buildspec = yaml.safe_load(path.read_text(encoding="utf-8"))
    failures: list[str] = []
    passed = 0

    def expect(label: str, ok: bool, result: subprocess.CompletedProcess | None = None) -> None:
        nonlocal passed
        if ok:
            passed += 1
            print(f"  ok: {label}")
        else:
            failures.append(label)
            print(f"  FAILED: {label}", file=sys.stderr)
            if result is not None:
                print(textwrap.indent(result.stdout[-3000:] + result.stderr[-3000:], "    | "), file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="toolshed-buildspec-") as tmp:
        h = Harness(registry, Path(tmp), buildspec)
        try:
            # A server image FROM scratch: the engine cannot pull anything here.
            repo, sha = h.source_repo("time", {
                "Dockerfile": "FROM scratch\nCOPY server.txt /server.txt\nCMD [\"/server\"]\n",
                "server.txt": f"time server {h.run_id}\n",
            })
            tag = f"build-time-{sha[:12]}"
            first = h.build(repo, sha, {"IMAGE_TAG": tag, "SERVER_ID": "time"})
            digest = printed(first, "TOOLSHED_IMAGE_DIGEST")
            expect("http build succeeds", first.returncode == 0, first)
            calls = h.docker_calls()
            commands = [c for c, _ in calls]
            expect("the repository's docker build runs before any registry login",
                   "build" in commands and "login" in commands and commands.index("build") < commands.index("login"), first)
            expect("no registry credentials are stored while the untrusted build runs",
                   all(auths == 0 for c, auths in calls if c == "build"), first)
            expect("the daemon logs in before the push, which then has credentials",
                   "push" in commands and commands.index("login") < commands.index("push")
                   and all(auths > 0 for c, auths in calls if c == "push"), first)
            expect("digest printed and equal to the registry's", digest.startswith("sha256:") and digest == h.registry_digest(tag), first)
            expect("image URI is repository@digest", printed(first, "TOOLSHED_IMAGE_URI") == f"{registry}/{h.repo_name}@{digest}", first)

            again = h.build(repo, sha, {"IMAGE_TAG": tag, "SERVER_ID": "time"})
            expect("retry of the same commit succeeds without rebuilding",
                   again.returncode == 0 and "already exists, not rebuilding" in again.stdout and printed(again, "TOOLSHED_IMAGE_DIGEST") == digest, again)

            wrong = h.build(repo, sha, {"IMAGE_TAG": f"build-time-{'0' * 12}", "SERVER_ID": "time"})
            expect("a tag for another commit is refused", wrong.returncode != 0 and "does not match tag" in wrong.stderr + wrong.stdout, wrong)
            expect("nothing is pushed for the refused tag", h.registry_digest(f"build-time-{'0' * 12}") == "")

            unprefixed = h.build(repo, sha, {"IMAGE_TAG": f"time-{sha[:12]}", "SERVER_ID": "time"})
            expect("a tag without the build- prefix is refused (only candidates are pushed)",
                   unprefixed.returncode != 0 and "must be build-" in unprefixed.stderr + unprefixed.stdout, unprefixed)
            expect("no verified- tag can be pushed by a build",
                   h.build(repo, sha, {"IMAGE_TAG": f"verified-time-{sha[:12]}", "SERVER_ID": "time"}).returncode != 0)

            bad_id = h.build(repo, sha, {"IMAGE_TAG": f"build-Time-{sha[:12]}", "SERVER_ID": "Time"})
            expect("a bad server id is refused", bad_id.returncode != 0, bad_id)

            stdio_repo, stdio_sha = h.source_repo("stdio", {
                "Dockerfile": "FROM scratch\nCOPY server.txt /server.txt\n",
                "server.txt": f"stdio server {h.run_id}\n",
            })
            stdio_tag = f"build-stdio-{stdio_sha[:12]}"
            command = ["python", "-m", "mcp_server_time", "--local-timezone", "UTC"]
            stdio = h.build(stdio_repo, stdio_sha, {
                "IMAGE_TAG": stdio_tag, "SERVER_ID": "stdio", "MCP_TRANSPORT": "stdio",
                "MCP_STDIO_COMMAND": json.dumps(command),
                "BRIDGE_S3_URI": "s3://artifacts/toolshed/stdio-bridge",
            })
            expect("stdio build succeeds", stdio.returncode == 0, stdio)
            image = f"{registry}/{h.repo_name}:{stdio_tag}"
            inspect = subprocess.run(["docker", "image", "inspect", image], capture_output=True, text=True, check=False)
            config = json.loads(inspect.stdout)[0]["Config"] if inspect.returncode == 0 else {}
            expect("stdio image runs the bridge with the server command (exec form)",
                   config.get("Entrypoint") == BRIDGE_ENTRYPOINT and config.get("Cmd") == command, stdio)
            expect("stdio image exposes 8000", "8000/tcp" in (config.get("ExposedPorts") or {}))
            container = subprocess.run(["docker", "create", image], capture_output=True, text=True, check=False).stdout.strip()
            if container:
                listing = subprocess.run(["docker", "export", container], capture_output=True, check=False).stdout
                subprocess.run(["docker", "rm", container], capture_output=True, check=False)
                with tarfile.open(fileobj=io.BytesIO(listing)) as tar:
                    members = {m.name: m for m in tar.getmembers()}
                bridge = members.get("toolshed/stdio-bridge")
                expect("the bridge binary is in the image, executable",
                       bridge is not None and bool(bridge.mode & 0o111) and "server.txt" in members)
            else:
                expect("the stdio image can be created", False)
            expect("stdio digest printed", printed(stdio, "TOOLSHED_IMAGE_DIGEST") == h.registry_digest(stdio_tag) != "", stdio)

            bad_cmd = h.build(stdio_repo, stdio_sha, {
                "IMAGE_TAG": f"build-stdio2-{stdio_sha[:12]}", "SERVER_ID": "stdio2", "MCP_TRANSPORT": "stdio",
                "MCP_STDIO_COMMAND": "python -m server", "BRIDGE_S3_URI": "s3://artifacts/toolshed/stdio-bridge",
            })
            expect("a stdio command that is not a JSON array is refused",
                   bad_cmd.returncode != 0 and "MCP_STDIO_COMMAND must be" in bad_cmd.stderr + bad_cmd.stdout, bad_cmd)

            no_bridge = h.build(stdio_repo, stdio_sha, {
                "IMAGE_TAG": f"build-stdio3-{stdio_sha[:12]}", "SERVER_ID": "stdio3", "MCP_TRANSPORT": "stdio",
                "MCP_STDIO_COMMAND": json.dumps(command),
            })
            expect("stdio without a configured bridge is refused", no_bridge.returncode != 0, no_bridge)

            broken_repo, broken_sha = h.source_repo("broken", {"Dockerfile": "FROM scratch\nCOPY missing.txt /\n"})
            broken = h.build(broken_repo, broken_sha, {"IMAGE_TAG": f"build-broken-{broken_sha[:12]}", "SERVER_ID": "broken"})
            expect("a broken Dockerfile fails the build and pushes nothing",
                   broken.returncode != 0 and h.registry_digest(f"build-broken-{broken_sha[:12]}") == "", broken)

            # A monorepo: one server per subfolder, each with its own Dockerfile; the build spec
            # (BUILD_CONTEXT, DOCKERFILE, BUILD_ARGS) is hostile where it can be.
            marker = h.work / "shell-ran"
            hostile = f"$(touch {marker}); a; rm -rf / `touch {marker}` \"q\" 'q'"
            mono, mono_sha = h.source_repo("mono", {
                "servers/a/Dockerfile": "FROM scratch\nARG FLAVOUR=plain\nLABEL toolshed.test.flavour=\"$FLAVOUR\"\nCOPY a.txt /a.txt\n",
                "servers/a/a.txt": f"server a {h.run_id}\n",
                "servers/b/Dockerfile": "FROM scratch\nCOPY b.txt /b.txt\n",
                "servers/b/b.txt": f"server b {h.run_id}\n",
                "Dockerfile.root": "FROM scratch\n",
            }, links={
                "servers/escape": "../..",
                "servers/a/Dockerfile.passwd": "/etc/passwd",
                "servers/a/Dockerfile.root": "../../Dockerfile.root",
            })
            def mono_build(server: str, spec: str, env: dict[str, str]) -> tuple[str, subprocess.CompletedProcess]:
                tag = f"build-{server}_{spec}-{mono_sha[:12]}"
                return tag, h.build(mono, mono_sha, {"IMAGE_TAG": tag, "SERVER_ID": server, **env})
            tag_a, mono_a = mono_build("mono-a", "0123456789", {
                "BUILD_CONTEXT": "servers/a", "BUILD_ARGS": json.dumps({"FLAVOUR": hostile})})
            expect("a server in a subfolder builds with its own Dockerfile", mono_a.returncode == 0, mono_a)
            inspect = subprocess.run(["docker", "image", "inspect", f"{registry}/{h.repo_name}:{tag_a}"],
                                     capture_output=True, text=True, check=False)
            labels = (json.loads(inspect.stdout)[0]["Config"].get("Labels") or {}) if inspect.returncode == 0 else {}
            expect("a build argument reaches the build verbatim (label equals the hostile value)",
                   labels.get("toolshed.test.flavour") == hostile, mono_a)
            tag_b, mono_b = mono_build("mono-b", "abcdef0123", {"BUILD_CONTEXT": "./servers/b/", "DOCKERFILE": "Dockerfile"})
            digest_a, digest_b = printed(mono_a, "TOOLSHED_IMAGE_DIGEST"), printed(mono_b, "TOOLSHED_IMAGE_DIGEST")
            expect("the other subfolder of the same commit gives another image",
                   mono_b.returncode == 0 and digest_a.startswith("sha256:") and digest_b.startswith("sha256:") and digest_a != digest_b, mono_b)
            _, injected = mono_build("mono-c", "1111111111", {"BUILD_CONTEXT": f"$(touch {marker})"})
            expect("a context made of shell syntax is a (missing) folder name, never run", injected.returncode != 0, injected)
            _, injected = mono_build("mono-c", "2222222222", {"BUILD_CONTEXT": "servers/a", "DOCKERFILE": f"Dockerfile; touch {marker}"})
            expect("a Dockerfile name made of shell syntax is never run", injected.returncode != 0, injected)
            expect("no hostile value was ever run by a shell", not marker.exists())
            for label, env, why in [
                ("a context linking out of the repository is refused", {"BUILD_CONTEXT": "servers/escape"}, "resolves outside the repository"),
                ("a Dockerfile linking out of the repository is refused", {"BUILD_CONTEXT": "servers/a", "DOCKERFILE": "Dockerfile.passwd"}, "resolves outside the build context"),
                ("a Dockerfile linking out of the context is refused", {"BUILD_CONTEXT": "servers/a", "DOCKERFILE": "Dockerfile.root"}, "resolves outside the build context"),
                ("a context with '..' is refused", {"BUILD_CONTEXT": "servers/../.."}, "without '..'"),
                ("an absolute context is refused", {"BUILD_CONTEXT": "/etc"}, "without '..'"),
                ("a reserved build argument is refused", {"BUILD_CONTEXT": "servers/a", "BUILD_ARGS": '{"BUILDKIT_SYNTAX": "evil/frontend"}'}, "BUILD_ARGS must be"),
                ("a build argument with a line break is refused", {"BUILD_CONTEXT": "servers/a", "BUILD_ARGS": '{"A": "x\\ny"}'}, "BUILD_ARGS must be"),
                ("a build argument with a bad name is refused", {"BUILD_CONTEXT": "servers/a", "BUILD_ARGS": '{"A B": "x"}'}, "BUILD_ARGS must be"),
            ]:
                _, refused = mono_build("mono-x", "3333333333", env)
                expect(label, refused.returncode != 0 and why in refused.stderr + refused.stdout, refused)
            expect("nothing was pushed for a refused spec", h.registry_digest(f"build-mono-x_3333333333-{mono_sha[:12]}") == "")

            # A package build: no repository (CodeBuild clones nothing), the generated Dockerfile
            # travels base64-encoded and the package fingerprint stands in for the commit.
            no_source = h.work / "no-source"
            no_source.mkdir()
            (no_source / "decoy.txt").write_text("not part of any context\n", encoding="utf-8")
            fingerprint = hashlib.sha256(f"pypi\0pkg-{h.run_id}\01.0".encode()).hexdigest()[:40]
            pkg_tag = f"build-pkg-{fingerprint[:12]}"
            pkg_dockerfile = (f"# Installs pypi io.github.example/pkg $(touch {marker}) `touch {marker}` \"q\" 'q' \u00e9\n"
                              f"FROM scratch\nCOPY . /ctx/\nCMD [\"pkg-{h.run_id}\"]\n")
            def b64(text: str) -> str:
                return base64.b64encode(text.encode("utf-8")).decode("ascii")
            def package_build(env: dict[str, str]) -> subprocess.CompletedProcess:
                return h.build(no_source, "", {"IMAGE_TAG": pkg_tag, "SERVER_ID": "pkg",
                                               "INLINE_DOCKERFILE_B64": b64(pkg_dockerfile),
                                               "SOURCE_FINGERPRINT": fingerprint, **env})
            pkg = package_build({})
            expect("a package build succeeds without a repository", pkg.returncode == 0, pkg)
            expect("a package build runs no git (nothing cloned, no commit check)", h.git_calls() == [], pkg)
            pkg_digest = printed(pkg, "TOOLSHED_IMAGE_DIGEST")
            expect("a package build is pushed under the fingerprint's tag, its digest printed",
                   pkg_digest.startswith("sha256:") and pkg_digest == h.registry_digest(pkg_tag)
                   and printed(pkg, "TOOLSHED_IMAGE_URI") == f"{registry}/{h.repo_name}@{pkg_digest}", pkg)
            pkg_image = f"{registry}/{h.repo_name}:{pkg_tag}"
            context = h.image_files(pkg_image, "ctx/")
            expect("the package build's context is exactly the given Dockerfile, byte for byte",
                   context == {"ctx/Dockerfile": pkg_dockerfile.encode("utf-8")}, pkg)
            expect("the package image's revision label is the fingerprint",
                   h.image_labels(pkg_image).get("org.opencontainers.image.revision") == fingerprint, pkg)
            pkg_again = package_build({})
            expect("a retried package build reports the stored digest without rebuilding",
                   pkg_again.returncode == 0 and "already exists, not rebuilding" in pkg_again.stdout
                   and printed(pkg_again, "TOOLSHED_IMAGE_DIGEST") == pkg_digest, pkg_again)
            other = hashlib.sha256(b"pypi\0other\01.0").hexdigest()[:40]
            mismatch = package_build({"SOURCE_FINGERPRINT": other})
            expect("a fingerprint that is not the tag's is refused",
                   mismatch.returncode != 0 and "does not match tag" in mismatch.stderr + mismatch.stdout, mismatch)
            for label, env, why in [
                ("a package Dockerfile variable made of shell syntax is refused, never run",
                 {"INLINE_DOCKERFILE_B64": f"$(touch {marker})"}, "must be base64"),
                ("a package Dockerfile variable with a line break and a command is refused",
                 {"INLINE_DOCKERFILE_B64": f"{b64(pkg_dockerfile)}\ntouch {marker}"}, "must be base64"),
                ("a package Dockerfile over 8192 base64 characters is refused",
                 {"INLINE_DOCKERFILE_B64": "A" * 8196}, "at most 8192"),
                ("a fingerprint made of shell syntax is refused, never run",
                 {"SOURCE_FINGERPRINT": f"$(touch {marker})"}, "SOURCE_FINGERPRINT must be"),
            ]:
                refused = h.build(no_source, "", {"IMAGE_TAG": f"build-pkg2-{fingerprint[:12]}", "SERVER_ID": "pkg2",
                                                   "INLINE_DOCKERFILE_B64": b64(pkg_dockerfile),
                                                   "SOURCE_FINGERPRINT": fingerprint, **env})
                expect(label, refused.returncode != 0 and why in refused.stderr + refused.stdout, refused)
            expect("nothing was pushed for a refused package build", h.registry_digest(f"build-pkg2-{fingerprint[:12]}") == "")
            expect("no hostile package value was ever run by a shell", not marker.exists())
        finally:
            h.cleanup()

    status = "OK" if not failures else "FAILED"
    print(f"check_buildspec: {passed} passed, {len(failures)} failed ({status})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

//! The hermetic test environment: a temp dir with a HOME, one COHORT_HOME and one registry
//! clone per role, a bare repository as the shared remote, and the real `cohort` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

/// What a command printed, with its exit code.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn fails(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "expected exit {code}:\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
    #[track_caller]
    pub fn says(&self, needle: &str) -> &Run {
        assert!(
            self.all().contains(needle),
            "expected `{needle}` in output:\n{}",
            self.all()
        );
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cohort")
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("cohort-e2e-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        TestEnv { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The folder of one role (its COHORT_HOME is `<role>/cohort-home`, its clone `<role>/registry`).
    pub fn role_dir(&self, role: &str) -> PathBuf {
        let d = self.path().join(role);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub fn cohort_home(&self, role: &str) -> PathBuf {
        self.role_dir(role).join("cohort-home")
    }

    pub fn clone_dir(&self, role: &str) -> PathBuf {
        self.role_dir(role).join("registry")
    }

    pub fn remote(&self) -> PathBuf {
        self.path().join("remote.git")
    }

    fn base_cmd(&self, program: &str, role: &str, cwd: &Path) -> Command {
        let mut c = Command::new(program);
        let path = format!(
            "{}:{}",
            Path::new(bin()).parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.current_dir(cwd)
            .env_clear()
            .env("PATH", path)
            .env("HOME", self.path().join("home"))
            .env("COHORT_HOME", self.cohort_home(role))
            .env("LANG", "C.UTF-8")
            .env("GIT_AUTHOR_NAME", role)
            .env("GIT_AUTHOR_EMAIL", format!("{role}@example.org"))
            .env("GIT_COMMITTER_NAME", role)
            .env("GIT_COMMITTER_EMAIL", format!("{role}@example.org"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            // The tests' file servers listen on loopback, which downloads refuse by default
            // (a test that checks the refusal sets it to 0).
            .env("COHORT_ALLOW_PRIVATE_HOSTS", "1");
        if let Ok(h) = std::env::var("DOCKER_HOST") {
            c.env("DOCKER_HOST", h);
        }
        c
    }

    /// Runs cohort as `role` inside its registry clone (or the role folder before it exists).
    pub fn cohort(&self, role: &str, args: &[&str]) -> Run {
        let clone = self.clone_dir(role);
        let cwd = if clone.exists() {
            clone
        } else {
            self.role_dir(role)
        };
        self.cohort_in(role, &cwd, args, &[])
    }

    pub fn cohort_env(&self, role: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let clone = self.clone_dir(role);
        let cwd = if clone.exists() {
            clone
        } else {
            self.role_dir(role)
        };
        self.cohort_in(role, &cwd, args, env)
    }

    pub fn cohort_in(&self, role: &str, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut c = self.base_cmd(bin(), role, cwd);
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().expect("run cohort").into()
    }

    /// Runs git as `role` in `cwd`.
    pub fn git(&self, role: &str, cwd: &Path, args: &[&str]) -> Run {
        let mut c = self.base_cmd("git", role, cwd);
        c.args(args);
        c.output().expect("run git").into()
    }

    /// Generates an unencrypted key for `role` (handle = role).
    pub fn key(&self, role: &str) {
        self.cohort(
            role,
            &["key", "generate", "--handle", role, "--no-passphrase"],
        )
        .ok();
    }

    /// An admin creates the registry in its clone folder, pushes it to a new bare remote with the
    /// pre-receive hook installed; returns the registry id.
    pub fn init_shared(&self, admin: &str) -> String {
        self.key(admin);
        let clone = self.clone_dir(admin);
        let out = self
            .cohort_in(
                admin,
                &self.role_dir(admin),
                &[
                    "registry",
                    "init",
                    clone.to_str().unwrap(),
                    "--name",
                    "test-registry",
                    "--admin",
                    admin,
                ],
                &[],
            )
            .ok();
        let id = out.stdout.trim().to_string();
        self.git(
            admin,
            self.path(),
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                self.remote().to_str().unwrap(),
            ],
        )
        .ok();
        self.cohort(
            admin,
            &["registry", "install-hook", self.remote().to_str().unwrap()],
        )
        .ok();
        // The hook runs `cohort` from the git server's PATH; here that is the test binary.
        let hook = self.remote().join("hooks/pre-receive");
        let text = std::fs::read_to_string(&hook).unwrap();
        let bin_dir = Path::new(bin()).parent().unwrap().display().to_string();
        std::fs::write(
            &hook,
            text.replacen("\n", &format!("\nPATH=\"{bin_dir}:$PATH\"\n"), 1),
        )
        .unwrap();
        self.git(
            admin,
            &clone,
            &["remote", "add", "origin", self.remote().to_str().unwrap()],
        )
        .ok();
        self.git(admin, &clone, &["push", "--quiet", "-u", "origin", "main"])
            .ok();
        self.cohort(admin, &["registry", "sync"]).ok();
        id
    }

    /// `role` generates a key, clones the shared registry pinned to `id`, asks to join, pushes.
    pub fn join(&self, role: &str, id: &str) {
        self.key(role);
        let clone = self.clone_dir(role);
        self.cohort_in(
            role,
            &self.role_dir(role),
            &[
                "registry",
                "clone",
                self.remote().to_str().unwrap(),
                clone.to_str().unwrap(),
                "--root",
                id,
            ],
            &[],
        )
        .ok();
        self.cohort(
            role,
            &[
                "user",
                "request",
                "--name",
                &format!("{role} person"),
                "--email",
                &format!("{role}@example.org"),
            ],
        )
        .ok();
        self.cohort(role, &["registry", "push"]).ok();
    }

    /// Writes a file into `role`'s clone work tree.
    pub fn write(&self, role: &str, rel: &str, bytes: &[u8]) {
        let p = self.clone_dir(role).join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// Commits everything in `role`'s clone with git (bypassing cohort, like a careless or
    /// malicious participant would).
    pub fn commit_all(&self, role: &str, msg: &str) {
        let c = self.clone_dir(role);
        self.git(role, &c, &["add", "-A"]).ok();
        self.git(role, &c, &["commit", "--quiet", "--no-verify", "-m", msg])
            .ok();
    }

    /// Unlocks `role`'s key through the library (for crafting signed files in tests).
    pub fn signer(&self, role: &str) -> cohort::trust::Signer {
        self.signer_of(role, role)
    }

    /// Unlocks `handle`'s key kept in `role`'s home.
    pub fn signer_of(&self, role: &str, handle: &str) -> cohort::trust::Signer {
        let home = cohort::storage::Home::new(self.cohort_home(role));
        cohort::trust::keys::unlock(&home, handle, &mut || {
            unreachable!("test keys have no passphrase")
        })
        .unwrap()
    }
}

/// Parses stdout as JSON.
pub fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.stdout))
}

impl TestEnv {
    /// The fixture cubes and data, copied into this environment: busybox placed in each build
    /// context, and image tags made unique to the fixture contents so parallel tests and stale
    /// images never mix (tags `cohort-e2e/<cube>:<content hash>`; images are reused across runs).
    pub fn fixtures(&self) -> PathBuf {
        let dest = self.path().join("fixtures");
        if dest.exists() {
            return dest;
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        copy_tree(&src.join("data"), &dest.join("data"));
        for e in std::fs::read_dir(src.join("cubes")).unwrap() {
            let cube = e.unwrap().path();
            let name = cube.file_name().unwrap().to_string_lossy().into_owned();
            let to = dest.join("cubes").join(&name);
            copy_tree(&cube.join("project"), &to.join("project"));
            std::fs::create_dir_all(to.join("workspace")).unwrap();
            std::fs::copy(
                cube.join("workspace/parameters.yaml"),
                to.join("workspace/parameters.yaml"),
            )
            .unwrap();
            let mut digest_input = std::fs::read(cube.join("mlcube.yaml")).unwrap();
            let mut files: Vec<_> = std::fs::read_dir(cube.join("project"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            files.sort();
            for f in files {
                digest_input.extend(std::fs::read(f).unwrap());
            }
            let tag = &cohort::model::Sha256::of(&digest_input).to_string()[..12];
            let yaml = std::fs::read_to_string(cube.join("mlcube.yaml"))
                .unwrap()
                .replace(
                    &format!("cohort-fixtures/{name}:0.1.0"),
                    &format!("cohort-e2e/{name}:{tag}"),
                );
            std::fs::write(to.join("mlcube.yaml"), yaml).unwrap();
            std::fs::copy("/bin/busybox", to.join("project/busybox"))
                .expect("busybox-static is installed (.ci/run installs it)");
        }
        dest
    }

    pub fn cube(&self, name: &str) -> String {
        self.fixtures()
            .join("cubes")
            .join(name)
            .display()
            .to_string()
    }

    pub fn data(&self, rel: &str) -> String {
        self.fixtures().join("data").join(rel).display().to_string()
    }
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let name = e.file_name();
        if name == "busybox" {
            continue;
        }
        if p.is_dir() {
            copy_tree(&p, &to.join(&name));
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

impl TestEnv {
    /// A copy of fixture cube `dir` under `name` with its own image tag, for tests that change a
    /// cube; `edit` gets the folder to change files in.
    pub fn cube_variant(&self, dir: &str, name: &str, edit: impl FnOnce(&Path)) -> String {
        let to = self.path().join("variants").join(name);
        copy_tree(Path::new(&self.cube(dir)), &to);
        std::fs::copy("/bin/busybox", to.join("project/busybox")).unwrap();
        edit(&to);
        let yaml = std::fs::read_to_string(to.join("mlcube.yaml")).unwrap();
        let mut digest = yaml.clone().into_bytes();
        let mut files: Vec<_> = std::fs::read_dir(to.join("project"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            digest.extend(std::fs::read(f).unwrap());
        }
        digest.extend(std::fs::read(to.join("workspace/parameters.yaml")).unwrap_or_default());
        let tag = &cohort::model::Sha256::of(&digest).to_string()[..12];
        let yaml: String = yaml
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("image:") {
                    format!("  image: cohort-e2e/{name}:{tag}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(to.join("mlcube.yaml"), yaml + "\n").unwrap();
        to.display().to_string()
    }

    /// Replaces `from` with `to` in a file of a cube variant.
    pub fn edit(path: &Path, from: &str, to: &str) {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(from), "{} has no `{from}`", path.display());
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    /// A gzipped tarball with the given (path, bytes) entries, names written raw (so `../x` and
    /// `/abs` can be tested).
    pub fn tarball(&self, name: &str, entries: &[(&str, &[u8])]) -> String {
        let p = self.path().join(name);
        let f = std::fs::File::create(&p).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::default());
        let mut b = tar::Builder::new(gz);
        for (path, bytes) in entries {
            let mut h = tar::Header::new_gnu();
            let name = &mut h.as_gnu_mut().unwrap().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, *bytes).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap();
        p.display().to_string()
    }
}

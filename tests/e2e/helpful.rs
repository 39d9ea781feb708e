//! Errors that help: permission problems said in words before any work starts, not-found errors
//! that suggest names and say where a thing is, and messages of `registry push` and `merge`.

use crate::env::TestEnv;
use crate::sites::label_first;

/// A cube folder nobody built before: its image tag is new, so "no image" is checkable.
fn fresh_cube(e: &TestEnv, name: &str) -> (String, String) {
    let run = format!("{name}-{}", std::process::id());
    let dir = e.cube_variant("model-good", name, |p| {
        let df = p.join("project/Dockerfile");
        let text = std::fs::read_to_string(&df).unwrap();
        std::fs::write(&df, label_first(&text, &run)).unwrap();
    });
    let yaml = std::fs::read_to_string(std::path::Path::new(&dir).join("mlcube.yaml")).unwrap();
    let image = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("image: "))
        .unwrap()
        .to_string();
    (dir, image)
}

fn image_exists(image: &str) -> bool {
    std::process::Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn permission_problems_are_said_before_any_work() {
    let e = TestEnv::new();
    let id = e.init_shared("admin");
    e.fixtures();
    let (cube, image) = fresh_cube(&e, "mia-model");
    // mia has a key and a clone, but never asked to join.
    e.key("mia");
    e.cohort_in(
        "mia",
        &e.role_dir("mia"),
        &[
            "registry",
            "clone",
            e.remote().to_str().unwrap(),
            e.clone_dir("mia").to_str().unwrap(),
            "--root",
            &id,
        ],
        &[],
    )
    .ok();
    let submit = [
        "mlcube",
        "submit",
        &cube,
        "--name",
        "mia-model",
        "--build",
        "--local-only",
    ];
    let r = e.cohort("mia", &submit).fails(1);
    r.says("error: mia is not an admitted user of this registry, so cannot submit cubes")
        .says("hint: run `cohort user request");
    assert!(!r.all().contains("[authority]"), "{}", r.all());
    let branches = |role: &str| {
        e.git(role, &e.clone_dir(role), &["branch", "--list", "submit/*"])
            .ok()
            .stdout
    };
    assert_eq!(branches("mia").trim(), "", "a branch was written");
    assert!(
        !image_exists(&image),
        "{image} was built before the refusal"
    );

    // Once mia asked, the hint points at the request waiting for an admin.
    e.cohort(
        "mia",
        &[
            "user",
            "request",
            "--name",
            "Mia",
            "--email",
            "mia@example.org",
        ],
    )
    .ok();
    e.cohort("mia", &submit)
        .fails(1)
        .says("waits on submit/mia/user-mia-v1")
        .says("cohort user approve mia");
    assert!(!image_exists(&image));

    // Admitted, mia is still not an admin: a grant is refused in words, nothing written.
    e.cohort("mia", &["registry", "push"]).ok();
    e.cohort("admin", &["user", "approve", "mia"]).ok();
    e.cohort("mia", &["registry", "sync"]).ok();
    let before = branches("mia");
    let r = e
        .cohort(
            "mia",
            &["user", "grant", "mia", "--role", "benchmark-owner"],
        )
        .fails(1);
    r.says("error: only registry admins can grant roles (mia is not an admin)")
        .says("hint: ask an admin");
    assert!(!r.all().contains("[signature]"), "{}", r.all());
    assert!(!r.all().contains("commit "), "{}", r.all());
    assert_eq!(branches("mia"), before, "a branch was written");
    // ...and so is submitting a benchmark without the benchmark-owner right.
    e.cohort(
        "mia",
        &[
            "benchmark",
            "submit",
            "--name",
            "mine",
            "--data-preparator",
            "x",
            "--reference-model",
            "y",
            "--metrics",
            "z",
            "--demo-dataset",
            "/nonexistent.tar.gz",
        ],
    )
    .fails(1)
    .says("only admins and holders of the benchmark-owner right can submit benchmarks")
    .says("cohort user grant mia --role benchmark-owner");
}

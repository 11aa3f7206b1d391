use super::*;
use std::os::unix::fs::symlink;

/// A fresh folder, removed (without following links) when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        let mut rand = [0u8; 8];
        crate::host::random_bytes(&mut rand).unwrap();
        let hex: String = rand.iter().map(|b| format!("{b:02x}")).collect();
        let p = std::env::temp_dir().join(format!("securer-files-{hex}"));
        std::fs::create_dir(&p).unwrap();
        Dir(std::fs::canonicalize(p).unwrap())
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = crate::tree::remove(&self.0);
    }
}

fn space(d: &Dir) -> Space {
    std::fs::create_dir_all(d.path("root")).unwrap();
    Space::new(&[d.path("root")]).unwrap()
}

#[test]
fn paths_are_normalised_lexically() {
    let base = Path::new("/tmp/s");
    assert_eq!(
        normalize(base, Path::new("a/./b//c")),
        Path::new("/tmp/s/a/b/c")
    );
    assert_eq!(normalize(base, Path::new("../x")), Path::new("/tmp/x"));
    assert_eq!(normalize(base, Path::new("/../../etc")), Path::new("/etc"));
    assert_eq!(normalize(base, Path::new("")), Path::new("/tmp/s"));
}

#[test]
fn paths_outside_the_space_are_refused_by_name() {
    let d = Dir::new();
    let s = space(&d);
    for p in ["../secret", "/etc/passwd", "sub/../../x"] {
        let e = s.locate(Path::new(p)).unwrap_err();
        assert_eq!(e.problem, FileProblem::Outside, "{p}");
        assert!(e.message.contains("outside the session's writable space"));
    }
    assert_eq!(s.locate(Path::new("a/../b")).unwrap(), d.path("root/b"));
    // A sibling folder whose name starts like the root is outside it.
    std::fs::create_dir(d.path("rootx")).unwrap();
    let e = s.locate(&d.path("rootx/f")).unwrap_err();
    assert_eq!(e.problem, FileProblem::Outside);
}

#[test]
fn links_that_leave_the_space_are_refused_and_links_inside_it_work() {
    let d = Dir::new();
    let s = space(&d);
    std::fs::write(d.path("secret"), "host secret").unwrap();
    std::fs::write(d.path("root/data.csv"), "a,b\n1,2\n").unwrap();
    symlink(d.path("secret"), d.path("root/out")).unwrap();
    symlink("data.csv", d.path("root/in")).unwrap();
    symlink(&d.0, d.path("root/updir")).unwrap();
    let e = s.open_read(Path::new("out"), 100).unwrap_err();
    assert_eq!(e.problem, FileProblem::Symlink);
    let e = s.open_read(Path::new("updir/secret"), 100).unwrap_err();
    assert_eq!(e.problem, FileProblem::Symlink);
    let (mut f, size) = s.open_read(Path::new("in"), 100).unwrap();
    assert_eq!(size, 8);
    assert_eq!(read_chunk(&mut f, 100).unwrap(), b"a,b\n1,2\n");
    // Writing through a folder link that leaves the space is refused too.
    let e = s.target(Path::new("updir/new.csv")).unwrap_err();
    assert_eq!(e.problem, FileProblem::Symlink);
    // Control: the same file read directly works (the check is what stops it).
    assert_eq!(std::fs::read(d.path("root/out")).unwrap(), b"host secret");
}

#[test]
fn missing_files_folders_and_oversize_files_have_their_own_problem() {
    let d = Dir::new();
    let s = space(&d);
    std::fs::create_dir(d.path("root/sub")).unwrap();
    std::fs::write(d.path("root/big"), vec![0u8; 1000]).unwrap();
    assert_eq!(
        s.open_read(Path::new("nope"), 10).unwrap_err().problem,
        FileProblem::NotFound
    );
    assert_eq!(
        s.open_read(Path::new("sub"), 10).unwrap_err().problem,
        FileProblem::NotFile
    );
    assert_eq!(
        s.open_read(Path::new("big"), 999).unwrap_err().problem,
        FileProblem::TooLarge
    );
    assert!(s.open_read(Path::new("big"), 1000).is_ok());
    assert_eq!(
        s.target(Path::new("nofolder/x")).unwrap_err().problem,
        FileProblem::NotFound
    );
    assert_eq!(
        s.target(Path::new("sub")).unwrap_err().problem,
        FileProblem::NotFile
    );
}

#[test]
fn a_fifo_is_not_a_file_and_opening_it_does_not_block() {
    let d = Dir::new();
    let s = space(&d);
    let fifo = sys::cpath(&d.path("root/fifo")).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let e = s.open_read(Path::new("fifo"), 10).unwrap_err();
    assert_eq!(e.problem, FileProblem::NotFile);
}

#[test]
fn listings_show_links_without_following_them() {
    let d = Dir::new();
    let s = space(&d);
    std::fs::create_dir(d.path("root/sub")).unwrap();
    std::fs::write(d.path("root/sub/b.txt"), "bb").unwrap();
    std::fs::write(d.path("root/a.txt"), "a").unwrap();
    symlink("/", d.path("root/sub/up")).unwrap();
    let (flat, truncated) = s.list(Path::new(""), false, 100).unwrap();
    assert!(!truncated);
    let names: Vec<_> = flat.iter().map(|e| (e.path.clone(), e.kind)).collect();
    assert_eq!(
        names,
        vec![
            (d.path("root/a.txt"), "file"),
            (d.path("root/sub"), "directory")
        ]
    );
    let (deep, _) = s.list(Path::new("."), true, 100).unwrap();
    assert_eq!(deep.len(), 4);
    assert_eq!(deep[2].path, d.path("root/sub/b.txt"));
    assert_eq!(deep[2].size, 2);
    assert_eq!(deep[3].kind, "symlink");
    let (few, truncated) = s.list(Path::new("."), true, 2).unwrap();
    assert!(truncated);
    assert_eq!(few.len(), 2);
    assert_eq!(
        s.list(Path::new("a.txt"), false, 10).unwrap_err().problem,
        FileProblem::NotFile
    );
}

#[test]
fn an_atomic_file_appears_whole_or_not_at_all() {
    let d = Dir::new();
    let target = d.path("out.csv");
    std::fs::write(&target, "old").unwrap();
    let mut w = AtomicFile::create(&target, 10).unwrap();
    w.write(b"new,").unwrap();
    // Not yet visible; the target keeps its old content meanwhile.
    assert_eq!(std::fs::read(&target).unwrap(), b"old");
    w.write(b"data").unwrap();
    assert_eq!(w.written(), 8);
    w.commit().unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new,data");
    // Over the cap: an error, and nothing is left behind.
    let mut w = AtomicFile::create(&target, 3).unwrap();
    assert_eq!(w.write(b"four").unwrap_err().problem, FileProblem::TooLarge);
    drop(w);
    let left: Vec<_> = std::fs::read_dir(&d.0).unwrap().flatten().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(std::fs::read(&target).unwrap(), b"new,data");
}

#[test]
fn an_atomic_file_replaces_a_link_at_the_target_instead_of_following_it() {
    let d = Dir::new();
    std::fs::write(d.path("victim"), "precious").unwrap();
    symlink(d.path("victim"), d.path("out")).unwrap();
    let mut w = AtomicFile::create(&d.path("out"), 100).unwrap();
    w.write(b"downloaded").unwrap();
    w.commit().unwrap();
    assert_eq!(std::fs::read(d.path("victim")).unwrap(), b"precious");
    assert!(!std::fs::symlink_metadata(d.path("out"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(d.path("out")).unwrap(), b"downloaded");
}

#[test]
fn an_atomic_file_stays_in_the_folder_opened_at_the_start() {
    let d = Dir::new();
    std::fs::create_dir(d.path("out")).unwrap();
    std::fs::create_dir(d.path("elsewhere")).unwrap();
    let mut w = AtomicFile::create(&d.path("out/f"), 100).unwrap();
    // The folder is swapped for a link to another one mid-write.
    std::fs::rename(d.path("out"), d.path("moved")).unwrap();
    symlink(d.path("elsewhere"), d.path("out")).unwrap();
    w.write(b"x").unwrap();
    w.commit().unwrap();
    assert_eq!(std::fs::read(d.path("moved/f")).unwrap(), b"x");
    assert!(std::fs::read_dir(d.path("elsewhere"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn an_atomic_file_refuses_a_folder_target_and_a_missing_folder() {
    let d = Dir::new();
    std::fs::create_dir(d.path("sub")).unwrap();
    assert_eq!(
        AtomicFile::create(&d.path("sub"), 1).unwrap_err().problem,
        FileProblem::NotFile
    );
    assert_eq!(
        AtomicFile::create(&d.path("none/f"), 1)
            .unwrap_err()
            .problem,
        FileProblem::NotFound
    );
    assert_eq!(
        AtomicFile::create(Path::new("/"), 1).unwrap_err().problem,
        FileProblem::NotFile
    );
}

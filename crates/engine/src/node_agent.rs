//! The node agent: a small container Berth keeps on each node of a Swarm whose engine it
//! reaches, to read that host's CPU time, memory and disk space, which the Engine API does not
//! give. Its image is Berth's own executable with the shared objects it runs with (read from
//! `/proc/self/maps`), imported into each node's engine from a plain archive (`docker
//! import`), so no registry and no image from elsewhere is needed. The container sees the
//! host's `/proc` and the engine's data root read-only, has no network and no capabilities,
//! and runs one idle process; each reading is an exec of the agent's read command.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Where the agent container sees the host's `/proc`.
pub const PROC_MOUNT: &str = "/host/proc";
/// Where the agent container sees the engine's data root.
pub const DATA_ROOT_MOUNT: &str = "/host/data-root";
/// The environment variable that tells the agent how its node names the data root.
pub const DATA_ROOT_ENV: &str = "BERTH_NODE_DATA_ROOT";
/// The agent container's name on every node.
pub const CONTAINER_NAME: &str = "berth-node-agent";
/// Where the executable sits in the image.
const EXECUTABLE: &str = "/berth";
/// The most a reading may print.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// The label that marks the agent container, with the image's identity as its value.
pub const AGENT_LABEL: &str = "berth.node-agent";

/// A file of the agent's image: where it is read here, where it goes in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageFile {
    source: PathBuf,
    target: String,
}

/// The agent's image and how its container runs (see the module docs).
#[derive(Debug)]
pub struct NodeAgent {
    image: String,
    files: Vec<ImageFile>,
    library_path: String,
    work_dir: PathBuf,
    rootfs: tokio::sync::OnceCell<PathBuf>,
    keep_running: Vec<String>,
    read: Vec<String>,
}

impl NodeAgent {
    /// The agent made of `executable` as this process runs it: `maps` is this process's
    /// `/proc/self/maps`, which names every shared object loaded. `keep_running` and `read`
    /// are the executable's arguments for the container's idle process and for one reading
    /// (printed as JSON on standard output). The image's archive is written under
    /// `work_dir` the first time a node lacks the image.
    pub fn of_executable(
        executable: &Path,
        maps: &str,
        work_dir: PathBuf,
        keep_running: Vec<String>,
        read: Vec<String>,
    ) -> io::Result<NodeAgent> {
        let executable = std::fs::canonicalize(executable)?;
        let mut files = vec![ImageFile {
            source: executable.clone(),
            target: EXECUTABLE.into(),
        }];
        // The kernel starts a dynamic executable through the interpreter it names (a path
        // that is often a symbolic link): its file goes at exactly that path.
        if let Some(interpreter) = elf_interpreter(&executable)? {
            files.push(ImageFile {
                source: std::fs::canonicalize(&interpreter)?,
                target: interpreter,
            });
        }
        for mapped in mapped_files(maps) {
            if mapped != executable && is_elf(&mapped) {
                let target = mapped.to_string_lossy().into_owned();
                if !files.iter().any(|f| f.target == target) {
                    files.push(ImageFile {
                        source: mapped,
                        target,
                    });
                }
            }
        }
        let library_dirs: BTreeSet<&str> = files[1..]
            .iter()
            .filter_map(|f| Path::new(&f.target).parent()?.to_str())
            .collect();
        let library_path = library_dirs.into_iter().collect::<Vec<_>>().join(":");
        let image = format!("berth-node-agent:{:016x}", identity(&files)?);
        Ok(NodeAgent {
            image,
            files,
            library_path,
            work_dir,
            rootfs: tokio::sync::OnceCell::new(),
            keep_running,
            read,
        })
    }

    /// The agent made of the running executable.
    pub fn of_this_executable(
        work_dir: PathBuf,
        keep_running: Vec<String>,
        read: Vec<String>,
    ) -> io::Result<NodeAgent> {
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        NodeAgent::of_executable(
            &std::env::current_exe()?,
            &maps,
            work_dir,
            keep_running,
            read,
        )
    }

    /// The image's name on a node: `berth-node-agent:<identity of its files>`.
    pub fn image(&self) -> &str {
        &self.image
    }

    /// The container's command line (the executable, then the idle process's arguments).
    pub fn entrypoint(&self) -> Vec<String> {
        std::iter::once(EXECUTABLE.to_owned())
            .chain(self.keep_running.iter().cloned())
            .collect()
    }

    /// The command line of one reading.
    pub fn read_command(&self) -> Vec<String> {
        std::iter::once(EXECUTABLE.to_owned())
            .chain(self.read.iter().cloned())
            .collect()
    }

    /// The container's environment: where its shared objects are, and how its node names
    /// the engine's data root.
    pub fn environment(&self, data_root: &str) -> Vec<String> {
        vec![
            format!("LD_LIBRARY_PATH={}", self.library_path),
            format!("{DATA_ROOT_ENV}={data_root}"),
        ]
    }

    /// The image's files as a tar archive (written once, then reused; the archives of
    /// earlier executables in the same directory are removed).
    pub async fn rootfs(&self) -> io::Result<PathBuf> {
        self.rootfs
            .get_or_try_init(|| async {
                let files = self.files.clone();
                let path = self
                    .work_dir
                    .join(format!("{}.tar", self.image.replace(':', "-")));
                let written = path.clone();
                let dir = self.work_dir.clone();
                tokio::task::spawn_blocking(move || {
                    std::fs::create_dir_all(&dir)?;
                    write_rootfs(&files, &written)?;
                    remove_other_archives(&dir, &written);
                    Ok::<_, io::Error>(())
                })
                .await
                .map_err(io::Error::other)??;
                Ok(path)
            })
            .await
            .cloned()
    }

    /// The paths the image holds, in order.
    pub fn targets(&self) -> impl Iterator<Item = &str> {
        self.files.iter().map(|f| f.target.as_str())
    }
}

/// The files `maps` names (absolute paths, each once, in order); deleted files and anonymous
/// or special mappings are left out.
fn mapped_files(maps: &str) -> Vec<PathBuf> {
    let mut seen = BTreeSet::new();
    maps.lines()
        .filter_map(|line| {
            // address perms offset dev inode [path] — the path may hold spaces.
            let path = line.splitn(6, char::is_whitespace).nth(5)?.trim_start();
            (path.starts_with('/') && !path.ends_with(" (deleted)")).then_some(path)
        })
        .filter(|path| seen.insert(*path))
        .map(PathBuf::from)
        .collect()
}

/// Whether `path` is a regular file starting with the ELF magic.
fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == *b"\x7fELF")
        && path.is_file()
}

/// The interpreter a 64-bit little-endian ELF executable names (`PT_INTERP`); `None` for a
/// static one.
fn elf_interpreter(executable: &Path) -> io::Result<Option<String>> {
    let mut file = std::fs::File::open(executable)?;
    let mut header = [0u8; 64];
    file.read_exact(&mut header)?;
    elf_interpreter_in(&header, |offset, len| {
        use std::io::{Seek, SeekFrom};
        let mut bytes = vec![0u8; len];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut bytes)?;
        Ok(bytes)
    })
}

/// [`elf_interpreter`] over the 64-byte ELF header and a reader of `len` bytes at `offset`.
fn elf_interpreter_in(
    header: &[u8; 64],
    mut read_at: impl FnMut(u64, usize) -> io::Result<Vec<u8>>,
) -> io::Result<Option<String>> {
    const PT_INTERP: u32 = 3;
    const PROGRAM_HEADER: usize = 56;
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return Err(invalid("not a 64-bit little-endian ELF executable"));
    }
    let u16_at = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let program_headers = u64::from_le_bytes(header[32..40].try_into().expect("8 bytes"));
    let entry_size = usize::from(u16_at(54));
    let entries = usize::from(u16_at(56));
    if entry_size < PROGRAM_HEADER || entries > 1024 {
        return Err(invalid("the ELF program headers are malformed"));
    }
    let table = read_at(program_headers, entry_size * entries)?;
    for entry in table.chunks_exact(entry_size) {
        let kind = u32::from_le_bytes(entry[0..4].try_into().expect("4 bytes"));
        if kind != PT_INTERP {
            continue;
        }
        let offset = u64::from_le_bytes(entry[8..16].try_into().expect("8 bytes"));
        let size = u64::from_le_bytes(entry[32..40].try_into().expect("8 bytes"));
        if size == 0 || size > 4096 {
            return Err(invalid("the ELF interpreter's name is malformed"));
        }
        let name = read_at(offset, size as usize)?;
        let name = name.strip_suffix(&[0]).unwrap_or(&name);
        let name = std::str::from_utf8(name)
            .ok()
            .filter(|n| n.starts_with('/'))
            .ok_or_else(|| invalid("the ELF interpreter's name is not an absolute path"))?;
        return Ok(Some(name.to_owned()));
    }
    Ok(None)
}

/// An identity of the image: its paths and, for each file, its size and modification time
/// (a rebuilt executable is a new image; the same one is recognised without reading it).
fn identity(files: &[ImageFile]) -> io::Result<u64> {
    let mut hasher = std::hash::DefaultHasher::new();
    for file in files {
        let meta = std::fs::metadata(&file.source)?;
        file.target.hash(&mut hasher);
        meta.len().hash(&mut hasher);
        meta.modified()?.hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// Writes `files` as a tar archive at `path` (through a temporary file, then renamed): each
/// parent directory first, then the files, owned by root, executable, dated 0.
fn write_rootfs(files: &[ImageFile], path: &Path) -> io::Result<()> {
    let partial = path.with_extension("partial");
    let mut builder = tar::Builder::new(io::BufWriter::new(std::fs::File::create(&partial)?));
    let mut directories = BTreeSet::new();
    for target in files
        .iter()
        .map(|f| f.target.as_str())
        .chain([PROC_MOUNT, DATA_ROOT_MOUNT])
    {
        let mut ancestors: Vec<&Path> = Path::new(target)
            .ancestors()
            .skip(1)
            .filter(|a| *a != Path::new("/"))
            .collect();
        ancestors.reverse();
        directories.extend(ancestors.into_iter().map(Path::to_path_buf));
    }
    directories.insert(PathBuf::from(PROC_MOUNT));
    directories.insert(PathBuf::from(DATA_ROOT_MOUNT));
    for directory in &directories {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(0o755);
        header.set_size(0);
        header.set_mtime(0);
        builder.append_data(&mut header, relative(directory), io::empty())?;
    }
    for file in files {
        let source = std::fs::File::open(&file.source)?;
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o755);
        header.set_size(source.metadata()?.len());
        header.set_mtime(0);
        builder.append_data(&mut header, relative(Path::new(&file.target)), source)?;
    }
    builder
        .into_inner()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    std::fs::rename(&partial, path)
}

/// Removes the agent archives in `dir` other than `kept` (those of earlier executables).
fn remove_other_archives(dir: &Path, kept: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_archive = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("berth-node-agent-") && n.ends_with(".tar"));
        if is_archive
            && path != kept
            && let Err(error) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), %error, "cannot remove an old node agent archive");
        }
    }
}

/// `path` without its leading `/` (tar entries are relative).
fn relative(path: &Path) -> &Path {
    path.strip_prefix("/").unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapped_files_are_the_absolute_paths_once_each() {
        let maps = "\
5581d4a00000-5581d4a9c000 r--p 00000000 fe:01 131 /usr/local/bin/berth
5581d4a9c000-5581d55e7000 r-xp 0009c000 fe:01 131 /usr/local/bin/berth
7f1c2c000000-7f1c2c021000 rw-p 00000000 00:00 0 
7f1c2e1d8000-7f1c2e1fe000 r--p 00000000 fe:01 2411 /usr/lib/x86_64-linux-gnu/libc.so.6
7f1c2e3a0000-7f1c2e3a4000 rw-p 00000000 00:00 0                          [heap]
7f1c2e3b0000-7f1c2e3b4000 r--p 00000000 fe:01 99 /tmp/old lib.so (deleted)
7f1c2e3c0000-7f1c2e3c4000 r--p 00000000 fe:01 98 /opt/with space/lib.so
7ffd1c5f2000-7ffd1c5f4000 r-xp 00000000 00:00 0                          [vdso]
";
        assert_eq!(
            mapped_files(maps),
            [
                "/usr/local/bin/berth",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                "/opt/with space/lib.so"
            ]
            .map(PathBuf::from)
        );
    }

    /// An ELF header whose program headers start at 64, `entries` of 56 bytes.
    fn header(entries: u16) -> [u8; 64] {
        let mut h = [0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&entries.to_le_bytes());
        h
    }

    fn program_header(kind: u32, offset: u64, size: u64) -> Vec<u8> {
        let mut p = vec![0u8; 56];
        p[0..4].copy_from_slice(&kind.to_le_bytes());
        p[8..16].copy_from_slice(&offset.to_le_bytes());
        p[32..40].copy_from_slice(&size.to_le_bytes());
        p
    }

    #[test]
    fn the_interpreter_is_read_from_the_program_headers() {
        let interp = b"/lib64/ld-linux-x86-64.so.2\0";
        let mut file = header(2).to_vec();
        file.extend(program_header(6, 0, 0));
        file.extend(program_header(3, 176, interp.len() as u64));
        file.extend(interp);
        let read = |offset: u64, len: usize| {
            let start = offset as usize;
            file.get(start..start + len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
        };
        let elf: [u8; 64] = file[..64].try_into().unwrap();
        assert_eq!(
            elf_interpreter_in(&elf, read).unwrap().as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        // (what is wrong, the header) — each is refused, none panics.
        let mut not_elf = elf;
        not_elf[0] = 0;
        let mut big_endian = elf;
        big_endian[5] = 2;
        let mut small_entries = elf;
        small_entries[54] = 8;
        for (what, bad) in [
            ("not ELF", not_elf),
            ("big-endian", big_endian),
            ("short entries", small_entries),
        ] {
            assert!(
                elf_interpreter_in(&bad, |_, _| Ok(vec![0; 112])).is_err(),
                "{what}"
            );
        }
        // A relative interpreter name is refused; no PT_INTERP is a static executable.
        let relative = |offset: u64, len: usize| {
            Ok(if offset == 64 {
                program_header(3, 200, 4)
            } else {
                b"ld\0\0"[..len].to_vec()
            })
        };
        assert!(elf_interpreter_in(&header(1), relative).is_err());
        assert_eq!(
            elf_interpreter_in(&header(1), |_, _| Ok(program_header(1, 0, 0))).unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn the_image_holds_this_executable_its_interpreter_and_libraries() {
        let dir = tempfile::tempdir().unwrap();
        let agent = NodeAgent::of_this_executable(
            dir.path().to_path_buf(),
            vec!["node-agent".into(), "wait".into()],
            vec!["node-agent".into(), "read".into()],
        )
        .unwrap();
        assert!(agent.image().starts_with("berth-node-agent:"));
        let targets: Vec<&str> = agent.targets().collect();
        assert_eq!(targets[0], EXECUTABLE);
        let interpreter = elf_interpreter(&std::env::current_exe().unwrap()).unwrap();
        if let Some(interpreter) = &interpreter {
            assert!(targets.contains(&interpreter.as_str()), "{targets:?}");
            assert!(targets.iter().any(|t| t.contains("libc.so")), "{targets:?}");
        }
        assert_eq!(
            agent.entrypoint(),
            ["/berth", "node-agent", "wait"].map(String::from)
        );
        assert_eq!(
            agent.read_command(),
            ["/berth", "node-agent", "read"].map(String::from)
        );
        // The same executable is the same image; the archive has each file whole.
        let again =
            NodeAgent::of_this_executable(dir.path().to_path_buf(), vec![], vec![]).unwrap();
        assert_eq!(again.image(), agent.image());
        let older = dir.path().join("berth-node-agent-0000000000000000.tar");
        let unrelated = dir.path().join("notes.tar");
        std::fs::write(&older, b"an earlier executable's").unwrap();
        std::fs::write(&unrelated, b"not the agent's").unwrap();
        let archive = agent.rootfs().await.unwrap();
        assert_eq!(agent.rootfs().await.unwrap(), archive);
        assert!(!older.exists() && unrelated.exists());
        let mut entries = std::collections::BTreeMap::new();
        for entry in tar::Archive::new(std::fs::File::open(&archive).unwrap())
            .entries()
            .unwrap()
        {
            let entry = entry.unwrap();
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            entries.insert(path, (entry.header().entry_type(), entry.size()));
        }
        let exe_size = std::fs::metadata(std::env::current_exe().unwrap())
            .unwrap()
            .len();
        assert_eq!(
            entries.get("berth"),
            Some(&(tar::EntryType::Regular, exe_size))
        );
        for mount in ["host/proc", "host/data-root"] {
            assert_eq!(
                entries.get(mount).map(|e| e.0),
                Some(tar::EntryType::Directory),
                "{mount}: {entries:?}"
            );
        }
        if let Some(interpreter) = interpreter {
            let key = interpreter.trim_start_matches('/');
            assert_eq!(entries.get(key).map(|e| e.0), Some(tar::EntryType::Regular));
            let parent = Path::new(key).parent().unwrap().to_string_lossy();
            assert!(entries.contains_key(parent.as_ref()), "{parent}");
        }
    }
}

//! The JSONL file sink: appends whole lines and rotates by size. A file never grows
//! past `max_bytes` (unless one line alone is longer); when the next line would not
//! fit, `path` becomes `path.1`, `path.1` becomes `path.2` …, the oldest beyond `keep`
//! is removed, and a fresh `path` is started. Blocking I/O: the exporter calls it on a
//! blocking thread, never on a runtime worker.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use switchyard_config::ExportFile;

/// An open JSONL file with its rotation policy.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<File>,
    size: u64,
}

impl FileSink {
    /// Opens (creating it if needed) the file for appending.
    pub fn open(config: &ExportFile) -> io::Result<Self> {
        let mut sink = Self {
            path: config.path.clone(),
            max_bytes: config.max_bytes,
            keep: config.keep,
            file: None,
            size: 0,
        };
        sink.reopen()?;
        Ok(sink)
    }

    fn reopen(&mut self) -> io::Result<&mut File> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = file.metadata()?.len();
        Ok(self.file.insert(file))
    }

    /// Appends `lines` (newline-terminated JSON lines), rotating between lines as
    /// needed. After an error the file is reopened on the next call.
    pub fn write(&mut self, lines: &[u8]) -> io::Result<()> {
        let result = self.write_lines(lines);
        if result.is_err() {
            self.file = None;
        }
        result
    }

    fn write_lines(&mut self, mut rest: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.reopen()?;
        }
        while !rest.is_empty() {
            let room =
                usize::try_from(self.max_bytes.saturating_sub(self.size)).unwrap_or(usize::MAX);
            let mut take = whole_lines_within(rest, room);
            if take == 0 {
                if self.size > 0 {
                    self.rotate()?;
                    continue;
                }
                // One line longer than max_bytes, into an empty file: it goes in whole.
                take = whole_lines_within(rest, usize::MAX).min(line_len(rest));
            }
            let file = match self.file.as_mut() {
                Some(file) => file,
                None => self.reopen()?,
            };
            file.write_all(&rest[..take])?;
            self.size += take as u64;
            rest = &rest[take..];
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.keep == 0 {
            ignore_missing(std::fs::remove_file(&self.path))?;
        } else {
            for i in (1..self.keep).rev() {
                ignore_missing(std::fs::rename(
                    numbered(&self.path, i),
                    numbered(&self.path, i + 1),
                ))?;
            }
            ignore_missing(std::fs::rename(&self.path, numbered(&self.path, 1)))?;
        }
        self.reopen()?;
        Ok(())
    }
}

/// `requests.jsonl` → `requests.jsonl.3`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Bytes of the longest run of whole lines at the start of `text` that fits in `room`.
fn whole_lines_within(text: &[u8], room: usize) -> usize {
    let window = &text[..text.len().min(room)];
    match window.iter().rposition(|b| *b == b'\n') {
        Some(end) => end + 1,
        None if window.len() == text.len() => text.len(), // an unterminated tail fits
        None => 0,
    }
}

/// Bytes of the first line, its newline included.
fn line_len(text: &[u8]) -> usize {
    text.iter()
        .position(|b| *b == b'\n')
        .map_or(text.len(), |end| end + 1)
}

fn ignore_missing(result: io::Result<()>) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temp_dir() -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-export-file-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _fresh = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sink(dir: &Path, max_bytes: u64, keep: u32) -> FileSink {
        FileSink::open(&ExportFile {
            path: dir.join("requests.jsonl"),
            max_bytes,
            keep,
        })
        .unwrap()
    }

    fn read(dir: &Path, name: &str) -> Option<String> {
        std::fs::read_to_string(dir.join(name)).ok()
    }

    #[test]
    fn lines_are_appended_to_what_the_file_already_holds() {
        let dir = temp_dir();
        std::fs::write(dir.join("requests.jsonl"), "{\"old\":1}\n").unwrap();
        let mut file = sink(&dir, 1_000, 2);
        file.write(b"{\"a\":1}\n{\"b\":2}\n").unwrap();
        assert_eq!(
            read(&dir, "requests.jsonl").unwrap(),
            "{\"old\":1}\n{\"a\":1}\n{\"b\":2}\n"
        );
        assert!(read(&dir, "requests.jsonl.1").is_none());
    }

    #[test]
    fn a_full_file_rotates_between_lines_and_keeps_the_newest_files() {
        let dir = temp_dir();
        // Each line is 8 bytes; two fit in 20.
        let mut file = sink(&dir, 20, 2);
        for i in 0..7 {
            file.write(format!("{{\"n\":{i}}}\n").as_bytes()).unwrap();
        }
        assert_eq!(read(&dir, "requests.jsonl").unwrap(), "{\"n\":6}\n");
        assert_eq!(
            read(&dir, "requests.jsonl.1").unwrap(),
            "{\"n\":4}\n{\"n\":5}\n"
        );
        assert_eq!(
            read(&dir, "requests.jsonl.2").unwrap(),
            "{\"n\":2}\n{\"n\":3}\n"
        );
        assert!(read(&dir, "requests.jsonl.3").is_none());
    }

    #[test]
    fn one_batch_larger_than_max_bytes_is_split_across_files() {
        let dir = temp_dir();
        let mut file = sink(&dir, 16, 5);
        file.write(b"{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n{\"n\":4}\n")
            .unwrap();
        assert_eq!(read(&dir, "requests.jsonl").unwrap(), "{\"n\":4}\n");
        assert_eq!(
            read(&dir, "requests.jsonl.1").unwrap(),
            "{\"n\":2}\n{\"n\":3}\n"
        );
        assert_eq!(
            read(&dir, "requests.jsonl.2").unwrap(),
            "{\"n\":0}\n{\"n\":1}\n"
        );
    }

    #[test]
    fn a_line_longer_than_max_bytes_gets_a_file_of_its_own() {
        let dir = temp_dir();
        let mut file = sink(&dir, 4, 3);
        file.write(b"{\"n\":0}\n{\"n\":1}\n").unwrap();
        assert_eq!(read(&dir, "requests.jsonl").unwrap(), "{\"n\":1}\n");
        assert_eq!(read(&dir, "requests.jsonl.1").unwrap(), "{\"n\":0}\n");
    }

    #[test]
    fn keep_zero_starts_over_without_rotated_files() {
        let dir = temp_dir();
        let mut file = sink(&dir, 10, 0);
        file.write(b"{\"n\":0}\n").unwrap();
        file.write(b"{\"n\":1}\n").unwrap();
        assert_eq!(read(&dir, "requests.jsonl").unwrap(), "{\"n\":1}\n");
        assert!(read(&dir, "requests.jsonl.1").is_none());
    }

    #[test]
    fn a_file_removed_under_the_sink_is_started_afresh_at_rotation() {
        let dir = temp_dir();
        let mut file = sink(&dir, 10, 1);
        file.write(b"{\"n\":0}\n").unwrap();
        std::fs::remove_file(dir.join("requests.jsonl")).unwrap();
        file.write(b"{\"n\":1}\n").unwrap();
        assert_eq!(read(&dir, "requests.jsonl").unwrap(), "{\"n\":1}\n");
        assert!(read(&dir, "requests.jsonl.1").is_none());
    }

    #[test]
    fn a_failed_write_reopens_the_file_next_time() {
        let dir = temp_dir();
        std::fs::create_dir_all(dir.join("gone")).unwrap();
        let mut file = sink(&dir.join("gone"), 100, 1);
        std::fs::remove_dir_all(dir.join("gone")).unwrap();
        file.file = None;
        assert!(file.write(b"{\"n\":0}\n").is_err());
        std::fs::create_dir_all(dir.join("gone")).unwrap();
        file.write(b"{\"n\":1}\n").unwrap();
        assert_eq!(
            read(&dir.join("gone"), "requests.jsonl").unwrap(),
            "{\"n\":1}\n"
        );
    }
}

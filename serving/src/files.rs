//! File translation (LibreTranslate's `POST /translate_file` and
//! `GET /download_file/<name>`): the formats understood, how a file is cut
//! into texts and put back together, and the store of translated files.
//!
//! Translated files are kept in memory, not on disk: a bounded number
//! (`--max-stored-files`, the oldest dropped first) for a bounded time
//! (`--file-ttl-s`), so neither memory nor disk can fill, nothing is left
//! behind by a crash, and a download name can never reach the file system.
//! They are lost on restart, which LibreTranslate's clients tolerate: they
//! download the file right after the translation answers.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;

use crate::markup;

/// A file format `/translate_file` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileFormat {
    /// Plain text: each non-blank line is a text; blank lines and the
    /// whitespace around each line are kept.
    Text,
    /// HTML: each text node is a text; the markup is kept byte for byte.
    Html,
}

/// File name extensions (lower case, with the dot, as LibreTranslate lists
/// them in `supportedFilesFormat`) and their formats.
pub const EXTENSIONS: &[(&str, FileFormat)] = &[
    (".txt", FileFormat::Text),
    (".html", FileFormat::Html),
    (".htm", FileFormat::Html),
];

impl FileFormat {
    /// The format of a file name, by its extension (any case).
    pub fn of(filename: &str) -> Option<FileFormat> {
        let lower = filename.to_ascii_lowercase();
        EXTENSIONS
            .iter()
            .find(|(ext, _)| lower.ends_with(ext) && lower.len() > ext.len())
            .map(|(_, f)| *f)
    }

    /// `Content-Type` of a file of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            FileFormat::Text => "text/plain; charset=utf-8",
            FileFormat::Html => "text/html; charset=utf-8",
        }
    }
}

/// A piece of a plain-text file.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Kept as is (line breaks, blank lines, indentation, a byte order mark).
    Keep(String),
    /// A line's text, to translate.
    Text(String),
}

/// A file cut into what to translate and what to keep.
#[derive(Clone, Debug)]
pub struct Document {
    format: FileFormat,
    text_pieces: Vec<Piece>,
    html: Vec<markup::Segment>,
}

impl Document {
    /// Cuts `content` (already checked to be UTF-8) as `format` says.
    pub fn split(content: &str, format: FileFormat) -> Document {
        match format {
            FileFormat::Html => Document {
                format,
                text_pieces: Vec::new(),
                html: markup::split(content),
            },
            FileFormat::Text => {
                let mut pieces = Vec::new();
                // A byte order mark is not text: keep it out of the first line.
                let body = match content.strip_prefix('\u{feff}') {
                    Some(rest) => {
                        pieces.push(Piece::Keep('\u{feff}'.to_string()));
                        rest
                    }
                    None => content,
                };
                for (i, line) in body.split('\n').enumerate() {
                    if i > 0 {
                        pieces.push(Piece::Keep("\n".into()));
                    }
                    let trimmed = line.trim();
                    if trimmed.is_empty() {
                        pieces.push(Piece::Keep(line.to_string()));
                        continue;
                    }
                    let start = line.len() - line.trim_start().len();
                    let stop = start + trimmed.len();
                    pieces.push(Piece::Keep(line[..start].to_string()));
                    pieces.push(Piece::Text(trimmed.to_string()));
                    // Trailing whitespace, `\r` of CRLF line ends included.
                    pieces.push(Piece::Keep(line[stop..].to_string()));
                }
                Document {
                    format,
                    text_pieces: pieces,
                    html: Vec::new(),
                }
            }
        }
    }

    /// The texts to translate, in order.
    pub fn texts(&self) -> Vec<String> {
        match self.format {
            FileFormat::Html => markup::texts(&self.html),
            FileFormat::Text => self
                .text_pieces
                .iter()
                .filter_map(|p| match p {
                    Piece::Text(t) => Some(t.clone()),
                    Piece::Keep(_) => None,
                })
                .collect(),
        }
    }

    /// The file with `translations` (one per text, in order) in place of the texts.
    pub fn join(&self, translations: &[String]) -> String {
        match self.format {
            FileFormat::Html => markup::join(&self.html, translations),
            FileFormat::Text => {
                let mut out = String::new();
                let mut next = translations.iter();
                for p in &self.text_pieces {
                    match p {
                        Piece::Keep(s) => out.push_str(s),
                        Piece::Text(t) => out.push_str(next.next().unwrap_or(t)),
                    }
                }
                out
            }
        }
    }
}

/// The part of an uploaded file's name kept for the download: its last
/// path component, with anything but ASCII letters, digits, `.`, `-` and `_`
/// replaced by `_`, and at most 100 characters (the extension kept).
pub fn safe_name(filename: &str) -> String {
    let base = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default()
        .trim();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // Dots leading a name would hide the file or climb out of a folder when saved.
    let cleaned = cleaned.trim_start_matches('.');
    if cleaned.len() <= 100 {
        return cleaned.to_string();
    }
    let ext_at = cleaned.rfind('.').filter(|&i| cleaned.len() - i <= 10);
    match ext_at {
        Some(i) => format!("{}{}", &cleaned[..100 - (cleaned.len() - i)], &cleaned[i..]),
        None => cleaned[..100].to_string(),
    }
}

/// A translated file, ready for download.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// The name the client gets (`Content-Disposition`).
    pub download_name: String,
    pub content_type: &'static str,
    pub bytes: Bytes,
}

struct Entry {
    key: String,
    file: StoredFile,
    stored: Instant,
}

/// The translated files waiting for download: at most `max_files`, each for `ttl`.
pub struct FileStore {
    ttl: Duration,
    max_files: usize,
    entries: Mutex<VecDeque<Entry>>,
}

impl FileStore {
    pub fn new(ttl: Duration, max_files: usize) -> Self {
        Self {
            ttl,
            max_files,
            entries: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Entry>> {
        // A panic while holding the lock cannot leave the queue half-changed
        // (every change is one push or pop), so a poisoned lock is still usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops expired entries (the queue is in storing order, so they lead).
    fn prune(&self, entries: &mut VecDeque<Entry>, now: Instant) {
        while entries
            .front()
            .is_some_and(|e| now.duration_since(e.stored) >= self.ttl)
        {
            entries.pop_front();
        }
    }

    /// Stores a file under a new unguessable name (`<32 hex digits>.<safe name>`),
    /// dropping the oldest file when full; returns the name.
    pub fn put(&self, file: StoredFile) -> String {
        // 128 random bits: the name is the only thing that guards a download.
        let key = format!("{:032x}.{}", rand::random::<u128>(), file.download_name);
        let now = Instant::now();
        let mut entries = self.lock();
        self.prune(&mut entries, now);
        while entries.len() >= self.max_files {
            entries.pop_front();
        }
        entries.push_back(Entry {
            key: key.clone(),
            file,
            stored: now,
        });
        key
    }

    /// The file stored under `name`, while it has not expired or been dropped.
    pub fn get(&self, name: &str) -> Option<StoredFile> {
        let mut entries = self.lock();
        self.prune(&mut entries, Instant::now());
        entries
            .iter()
            .find(|e| e.key == name)
            .map(|e| e.file.clone())
    }

    /// Files held now (expired ones not counted).
    pub fn len(&self) -> usize {
        let mut entries = self.lock();
        self.prune(&mut entries, Instant::now());
        entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(FileFormat::of("a.TXT"), Some(FileFormat::Text));
        assert_eq!(FileFormat::of("dir/page.htm"), Some(FileFormat::Html));
        assert_eq!(FileFormat::of("page.html"), Some(FileFormat::Html));
        assert_eq!(FileFormat::of("doc.pdf"), None);
        assert_eq!(FileFormat::of(".txt"), None);
        assert_eq!(FileFormat::of("txt"), None);
    }

    #[test]
    fn text_files_keep_layout() {
        let content = "\u{feff}Erste Zeile.\r\n\r\n  Zweite Zeile.  \nDritte\n";
        let doc = Document::split(content, FileFormat::Text);
        assert_eq!(doc.texts(), ["Erste Zeile.", "Zweite Zeile.", "Dritte"]);
        assert_eq!(doc.join(&doc.texts()), content);
        assert_eq!(
            doc.join(&["A".into(), "B".into(), "C".into()]),
            "\u{feff}A\r\n\r\n  B  \nC\n"
        );
        assert!(Document::split(" \n\t\n", FileFormat::Text)
            .texts()
            .is_empty());
    }

    #[test]
    fn html_files_keep_markup() {
        let doc = Document::split(
            "<!DOCTYPE html><p>Hallo</p><script>x</script>",
            FileFormat::Html,
        );
        assert_eq!(doc.texts(), ["Hallo"]);
        assert_eq!(
            doc.join(&["Hello".into()]),
            "<!DOCTYPE html><p>Hello</p><script>x</script>"
        );
    }

    #[test]
    fn names_are_made_safe() {
        assert_eq!(safe_name("../../etc/passwd.txt"), "passwd.txt");
        assert_eq!(
            safe_name("C:\\Users\\me\\Brief an Oma.txt"),
            "Brief_an_Oma.txt"
        );
        assert_eq!(safe_name("...hidden.txt"), "hidden.txt");
        let long = format!("{}.html", "a".repeat(300));
        let safe = safe_name(&long);
        assert_eq!(safe.len(), 100);
        assert!(safe.ends_with(".html"));
    }

    #[test]
    fn store_is_bounded_in_count_and_time() {
        let file = |n: &str| StoredFile {
            download_name: n.into(),
            content_type: FileFormat::Text.content_type(),
            bytes: Bytes::from(n.to_string()),
        };
        let store = FileStore::new(Duration::from_secs(3600), 2);
        let a = store.put(file("a.txt"));
        let b = store.put(file("b.txt"));
        assert_ne!(a, b);
        assert!(a.ends_with(".a.txt") && a.len() == 32 + 1 + 5, "{a}");
        assert_eq!(store.get(&a).unwrap().bytes, "a.txt");
        let c = store.put(file("c.txt"));
        assert!(store.get(&a).is_none(), "the oldest is dropped when full");
        assert!(store.get(&b).is_some() && store.get(&c).is_some());
        assert_eq!(store.len(), 2);
        assert!(store.get("b.txt").is_none() && store.get("").is_none());

        let short = FileStore::new(Duration::from_millis(20), 10);
        let k = short.put(file("k.txt"));
        assert!(short.get(&k).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(short.get(&k).is_none(), "expired");
        assert!(short.is_empty());
    }
}

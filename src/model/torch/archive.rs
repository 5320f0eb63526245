//! The zip archive `torch.save` and `torch.jit.save` write: `<name>/data.pkl` (the pickle),
//! `<name>/data/<key>` (one entry per storage, stored uncompressed and aligned), and for
//! TorchScript `code/`, `constants.pkl` and debug records we do not need. Entries are
//! located in the file's own bytes; stored ones are never copied.

use std::collections::HashMap;
use std::io::Read as _;
use std::ops::Range;

/// The most bytes one pickle entry may hold (pickles are small; storages are apart).
pub const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// Where an entry's bytes are.
#[derive(Clone, Debug)]
enum Place {
    /// Stored: a range of the file.
    Stored(Range<usize>),
    /// Compressed: its index, to inflate on demand.
    Compressed { index: usize, size: u64 },
}

/// The entries of a torch archive.
pub struct Archive<'a> {
    bytes: &'a [u8],
    entries: HashMap<String, Place>,
    /// The folder holding `data.pkl` (`resnet8_int8/`).
    pub prefix: String,
}

/// The bytes of an entry: borrowed from the file, or inflated.
pub enum EntryBytes<'a> {
    /// The range of the file, and the bytes.
    Stored(Range<usize>, &'a [u8]),
    Inflated(Vec<u8>),
}

impl EntryBytes<'_> {
    /// The entry's bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Stored(_, b) => b,
            Self::Inflated(v) => v,
        }
    }
}

impl<'a> Archive<'a> {
    /// Reads the central directory of `bytes`.
    ///
    /// # Errors
    /// When it is not a zip archive, or holds no `data.pkl`.
    pub fn open(bytes: &'a [u8]) -> Result<Self, String> {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| format!("not a torch zip archive ({e}); files of torch < 1.6 are not read"))?;
        let mut entries = HashMap::new();
        for index in 0..zip.len() {
            let entry = zip.by_index(index).map_err(|e| format!("entry {index}: {e}"))?;
            let name = entry.name().map_err(|e| format!("entry {index}: {e}"))?.to_string();
            let place = match (entry.compression(), entry.data_start()) {
                (zip::CompressionMethod::Stored, Some(start)) => {
                    let start = usize::try_from(start).map_err(|_| "entry offset beyond memory")?;
                    let len = usize::try_from(entry.size()).map_err(|_| "entry size beyond memory")?;
                    let end = start.checked_add(len).filter(|&e| e <= bytes.len());
                    let Some(end) = end else { return Err(format!("{name} runs past the end of the file")) };
                    Place::Stored(start..end)
                }
                _ => Place::Compressed { index, size: entry.size() },
            };
            entries.insert(name, place);
        }
        let pickle = entries
            .keys()
            .filter(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
            .min_by_key(|n| n.len())
            .cloned()
            .ok_or("no data.pkl: not a torch.save or torch.jit.save archive")?;
        let prefix = pickle.trim_end_matches("data.pkl").to_string();
        Ok(Self { bytes, entries, prefix })
    }

    /// The entry `name` (under the archive's folder), at most `max` bytes.
    ///
    /// # Errors
    /// When it is missing, larger than `max`, or cannot be inflated.
    pub fn entry(&self, name: &str, max: u64) -> Result<EntryBytes<'a>, String> {
        let full = format!("{}{name}", self.prefix);
        match self.entries.get(&full) {
            None => Err(format!("no entry {full}")),
            Some(Place::Stored(r)) => {
                if r.len() as u64 > max {
                    return Err(format!("{full} holds {} bytes, more than {max}", r.len()));
                }
                Ok(EntryBytes::Stored(r.clone(), self.bytes.get(r.clone()).unwrap_or_default()))
            }
            Some(&Place::Compressed { index, size }) => {
                if size > max {
                    return Err(format!("{full} holds {size} bytes, more than {max}"));
                }
                let mut zip = zip::ZipArchive::new(std::io::Cursor::new(self.bytes)).map_err(|e| e.to_string())?;
                let entry = zip.by_index(index).map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                // (read at most what the directory declares, whatever the stream says)
                entry.take(size).read_to_end(&mut out).map_err(|e| format!("{full}: {e}"))?;
                Ok(EntryBytes::Inflated(out))
            }
        }
    }
}

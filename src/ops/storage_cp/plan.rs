//! What `cp` copies where: one job per object or file. A key that would land outside DESTINATION
//! becomes a refused job, reported like a failed copy, so `-c` still copies the rest.

use std::path::{Path, PathBuf};

use super::{parse_location, Error, Location, Options};
use crate::s3::transfer::{self, basename, confined, io_err};
use crate::s3::{self, ObjectEntry};

pub(super) enum Job {
    Download {
        bucket: String,
        key: String,
        /// The directory the user named (DESTINATION, or the parent of a file DESTINATION);
        /// `target` is inside it, and nothing is written outside it.
        root: PathBuf,
        target: PathBuf,
    },
    Upload {
        path: PathBuf,
        bucket: String,
        key: String,
    },
    /// A listed object whose key would land outside DESTINATION: refused, and reported like a
    /// failed copy so `-c` still copies the rest.
    Refused {
        bucket: String,
        key: String,
        error: Option<transfer::Error>,
    },
}

impl Job {
    pub(super) fn source(&self) -> String {
        match self {
            Job::Download { bucket, key, .. } | Job::Refused { bucket, key, .. } => {
                format!("s3://{bucket}/{key}")
            }
            Job::Upload { path, .. } => path.display().to_string(),
        }
    }
    pub(super) fn destination(&self) -> String {
        match self {
            Job::Download { target, .. } => target.display().to_string(),
            Job::Refused { .. } => String::new(),
            Job::Upload { bucket, key, .. } => format!("s3://{bucket}/{key}"),
        }
    }
}

/// What to copy where, one job per object or file.
pub(super) async fn plan(client: &s3::Client, opts: &Options) -> Result<Vec<Job>, Error> {
    let dest = parse_location(&opts.destination)?;
    let many = opts.sources.len() > 1 || opts.recursive;
    let mut jobs = Vec::new();
    for src in &opts.sources {
        match (parse_location(src)?, &dest) {
            (Location::S3 { bucket, key }, Location::Local(dir)) if opts.recursive => {
                downloads_below(client, &bucket, &key, dir, &mut jobs).await?;
            }
            (Location::S3 { key, .. }, Location::Local(_))
                if key.is_empty() || key.ends_with('/') =>
            {
                return Err(Error::PrefixNeedsRecursive(src.clone()));
            }
            (Location::S3 { bucket, key }, Location::Local(dir)) => {
                let into_dir = dir.is_dir() || opts.destination.ends_with('/') || many;
                jobs.push(download_one(bucket, key, dir, into_dir)?);
            }
            (Location::Local(path), Location::S3 { bucket, key }) if path.is_dir() => {
                if !opts.recursive {
                    return Err(transfer::Error::NeedsRecursive { path }.into());
                }
                uploads_below(&path, bucket, key, &mut jobs)?;
            }
            (Location::Local(path), Location::S3 { bucket, key }) => {
                let prefix_like = key.is_empty() || key.ends_with('/') || many;
                jobs.push(upload_one(path, bucket, key, prefix_like));
            }
            (Location::Local(_), Location::Local(_))
            | (Location::S3 { .. }, Location::S3 { .. }) => {
                return Err(Error::Unsupported(src.clone()))
            }
        }
    }
    if opts.sources.len() > 1 {
        if let Location::Local(d) = &dest {
            if !d.is_dir() && !opts.destination.ends_with('/') {
                return Err(Error::NotADirectory(opts.destination.clone()));
            }
        }
    }
    Ok(jobs)
}

/// `key` as a prefix: itself when empty or ending in `/`, else with a `/` added.
fn as_prefix(key: &str) -> String {
    if key.is_empty() || key.ends_with('/') {
        key.to_string()
    } else {
        format!("{key}/")
    }
}

/// `cp -r s3://BUCKET/KEY DIR`: every object below the prefix, at its relative path in `dir`.
async fn downloads_below(
    client: &s3::Client,
    bucket: &str,
    key: &str,
    dir: &Path,
    jobs: &mut Vec<Job>,
) -> Result<(), Error> {
    let prefix = as_prefix(key);
    for obj in list_all(client, bucket, &prefix).await? {
        if obj.key.ends_with('/') {
            continue;
        }
        match confined(dir, &obj.key, &obj.key[prefix.len()..]) {
            Ok(target) => jobs.push(Job::Download {
                bucket: bucket.to_string(),
                key: obj.key,
                root: dir.to_path_buf(),
                target,
            }),
            Err(e) => jobs.push(Job::Refused {
                bucket: bucket.to_string(),
                key: obj.key,
                error: Some(e),
            }),
        }
    }
    Ok(())
}

/// One object into `dest`: under its own name when `into_dir`, else as the file `dest`.
fn download_one(bucket: String, key: String, dest: &Path, into_dir: bool) -> Result<Job, Error> {
    let (root, target) = if into_dir {
        (dest.to_path_buf(), confined(dest, &key, basename(&key))?)
    } else {
        // The key's own name is not used, but a hostile one is still refused.
        confined(Path::new("."), &key, basename(&key))?;
        let parent = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        (parent.to_path_buf(), dest.to_path_buf())
    };
    Ok(Job::Download {
        bucket,
        key,
        root,
        target,
    })
}

/// `cp -r DIR s3://BUCKET/KEY`: every file below `dir`, at its relative path below the key.
fn uploads_below(dir: &Path, bucket: &str, key: &str, jobs: &mut Vec<Job>) -> Result<(), Error> {
    let base = as_prefix(key);
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    for f in files {
        let rel = f
            .strip_prefix(dir)
            .unwrap_or(&f)
            .to_string_lossy()
            .replace('\\', "/");
        jobs.push(Job::Upload {
            path: f.clone(),
            bucket: bucket.to_string(),
            key: format!("{base}{rel}"),
        });
    }
    Ok(())
}

/// One file: below `key` under its own name when `prefix_like`, else as the object `key`.
fn upload_one(path: PathBuf, bucket: &str, key: &str, prefix_like: bool) -> Job {
    let key = if prefix_like {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        format!("{}{name}", as_prefix(key))
    } else {
        key.to_string()
    };
    Job::Upload {
        path,
        bucket: bucket.to_string(),
        key,
    }
}

async fn list_all(
    client: &s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<ObjectEntry>, Error> {
    Ok(client.list_all(bucket, prefix, None).await?.objects)
}

/// The regular files below `dir`, in name order, depth first.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err("list", dir))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let t = e.file_type().map_err(io_err("inspect", &p))?;
        if t.is_dir() {
            walk(&p, out)?;
        } else if t.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

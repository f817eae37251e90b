//! Any exporter: a shell command whose standard output is the backup
//! (`kubectl get all,cm,secret -A -o yaml`, `etcdctl snapshot save
//! /dev/stdout`, an identity provider's user export). The stream ends only
//! once the command exited 0, so one that fails or is killed writes no
//! snapshot; its stderr goes to ours as it comes and its last lines are
//! kept in the snapshot (`CommandMeta`) for diagnosis. A restore command,
//! recorded with the backup or given at restore, reads the stream back on
//! its standard input.
//!
//! The commands are recorded in the snapshot as given: secrets belong in
//! the environment or in files the command reads, never in the command.

use std::process::{Command, Stdio};

use lifeboat_repo::archiver::{NamedStream, StreamSet};
use lifeboat_repo::chunker::Chunking;
use lifeboat_repo::snapshot::Snapshot;
use lifeboat_repo::tree::Node;
use lifeboat_repo::{browse, IndexedRepository, RepoError};
use serde::{Deserialize, Serialize};

use crate::error::{Result, SourceError};
use crate::producer::Producer;

/// The URL form's prefix: `command:CMD`.
pub const PREFIX: &str = "command:";

/// How much of the command's stderr the snapshot keeps.
const STDERR_RECORDED: usize = 4 * 1024;

/// What a command backup records in its snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CommandMeta {
    /// Always `command`.
    pub kind: String,
    /// The command, run by `sh -c`.
    pub command: String,
    /// The command that restores the stream (reads it on stdin), if given.
    pub restore_command: Option<String>,
    /// The stream's file name in the snapshot.
    pub stream: String,
    /// The last lines of the command's stderr (at most 4 KiB).
    pub stderr: String,
}

impl CommandMeta {
    /// The command metadata of `snapshot`, if it is a command backup.
    pub fn of(snapshot: &Snapshot) -> Option<CommandMeta> {
        let m: CommandMeta = serde_json::from_value(snapshot.source.clone()?).ok()?;
        (m.kind == "command").then_some(m)
    }
}

/// A command to back up.
pub struct CommandSource {
    /// The command, run by `sh -c`.
    pub command: String,
    /// The stream's name in the snapshot.
    pub stream: String,
    /// The command to record for restoring.
    pub restore_command: Option<String>,
}

impl CommandSource {
    /// The program's name as errors show it (never its arguments: they may
    /// hold secrets, however often we say they should not).
    fn program(&self) -> String {
        program_name(&self.command)
    }
}

fn program_name(command: &str) -> String {
    command
        .split_whitespace()
        .next()
        .unwrap_or("the command")
        .to_string()
}

fn shell(command: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command);
    cmd
}

impl crate::Source for CommandSource {
    fn display(&self) -> String {
        format!("{PREFIX}{}", self.program())
    }

    fn backup(&self) -> Result<Box<dyn StreamSet<'static>>> {
        if self.command.trim().is_empty() {
            return Err(SourceError::Usage("the source command is empty".into()));
        }
        let mut producer =
            Producer::spawn_echoing(shell(&self.command), &self.program(), "--source-command")?;
        let said = producer.stderr_on_success();
        Ok(Box::new(CommandBackup {
            producer: Some(producer),
            said,
            meta: CommandMeta {
                kind: "command".into(),
                command: self.command.clone(),
                restore_command: self.restore_command.clone(),
                stream: self.stream.clone(),
                stderr: String::new(),
            },
        }))
    }
}

struct CommandBackup {
    producer: Option<Producer>,
    said: std::sync::Arc<std::sync::Mutex<String>>,
    meta: CommandMeta,
}

impl StreamSet<'static> for CommandBackup {
    fn next_stream(&mut self) -> std::io::Result<Option<NamedStream<'static>>> {
        Ok(self.producer.take().map(|p| NamedStream {
            name: self.meta.stream.clone(),
            reader: Box::new(p),
            chunking: Chunking::ContentDefined,
        }))
    }

    fn finish(&mut self) -> std::io::Result<Option<serde_json::Value>> {
        let said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        let start = said.len().saturating_sub(STDERR_RECORDED);
        let start = (start..said.len())
            .find(|&i| said.is_char_boundary(i))
            .unwrap_or(said.len());
        self.meta.stderr = said[start..].to_string();
        serde_json::to_value(&self.meta)
            .map(Some)
            .map_err(std::io::Error::other)
    }
}

fn our_stderr() -> Stdio {
    use std::os::fd::AsFd;
    std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_or(Stdio::null(), Stdio::from)
}

/// What [`restore`] did.
#[derive(Debug, Clone, Serialize)]
pub struct CommandRestored {
    /// The command the stream was given to.
    pub restore_command: String,
    /// Bytes it read.
    pub bytes: u64,
}

/// Gives the stream of the command backup `snapshot` to `restore_command`
/// (else the one recorded) on its standard input; succeeds only when the
/// command read it all and exited 0.
pub fn restore(
    repo: &IndexedRepository,
    snapshot: &Snapshot,
    id: &str,
    restore_command: Option<&str>,
) -> Result<CommandRestored> {
    let meta = CommandMeta::of(snapshot).ok_or_else(|| {
        SourceError::WrongSnapshot(format!(
            "snapshot {id} is not a command backup; --restore-command gives a command backup's stream to a command"
        ))
    })?;
    let command = restore_command
        .map(str::to_string)
        .or(meta.restore_command.clone())
        .ok_or_else(|| {
            SourceError::Usage(format!(
                "snapshot {id} recorded no restore command: give --restore-command 'CMD' (it reads the stream on stdin) or --target DIR for the file {}",
                meta.stream
            ))
        })?;
    let node: Node = browse::find_node(repo, snapshot, id, &format!("/{}", meta.stream))?;
    let program = program_name(&command);
    let target = format!("the restore of snapshot {id}");
    let mut cmd = shell(&command);
    // Its output to our stderr: our stdout carries the outcome (--json).
    cmd.stdout(our_stderr());
    let fed = crate::producer::feed_stored(repo, &node, cmd, &program, &target, true)?;
    let bytes = fed.map_err(|e| match e {
        // The command exited 0 without reading everything.
        RepoError::Io { .. } => SourceError::Tool {
            program: program.clone(),
            target: target.clone(),
            message: "it exited before reading the whole stream".into(),
        },
        e => e.into(),
    })?;
    Ok(CommandRestored {
        restore_command: command,
        bytes,
    })
}

//! [`ScriptedSystem`]: an operating system whose commands answer what the test says, for the
//! launcher's and the helper peer check's tests on Linux.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::mac::system::{CommandOutput, Spawned, System};

type SpawnFn = dyn FnMut(&Path, &[(String, String)]) -> io::Result<Box<dyn Spawned>> + Send;

/// Commands answer by program name (the last answer set wins); a program with no answer is
/// "not found". Every command run and program spawned is recorded.
pub struct ScriptedSystem {
    uid: u32,
    answers: Mutex<HashMap<String, CommandOutput>>,
    existing: Mutex<HashSet<PathBuf>>,
    spawn: Mutex<Option<Box<SpawnFn>>>,
    ran: Mutex<Vec<String>>,
}

impl ScriptedSystem {
    pub fn new(uid: u32) -> ScriptedSystem {
        ScriptedSystem {
            uid,
            answers: Mutex::new(HashMap::new()),
            existing: Mutex::new(HashSet::new()),
            spawn: Mutex::new(None),
            ran: Mutex::new(Vec::new()),
        }
    }

    /// `program` prints `stdout` and exits with `code`.
    pub fn answer(&self, program: &str, code: i32, stdout: &str) -> &ScriptedSystem {
        self.answers.lock().unwrap().insert(
            program.to_owned(),
            CommandOutput {
                success: code == 0,
                code: Some(code),
                stdout: stdout.to_owned(),
                stderr: String::new(),
            },
        );
        self
    }

    /// `path` exists.
    pub fn file(&self, path: impl Into<PathBuf>) -> &ScriptedSystem {
        self.existing.lock().unwrap().insert(path.into());
        self
    }

    /// What spawning a program does.
    pub fn on_spawn(
        &self,
        spawn: impl FnMut(&Path, &[(String, String)]) -> io::Result<Box<dyn Spawned>> + Send + 'static,
    ) -> &ScriptedSystem {
        *self.spawn.lock().unwrap() = Some(Box::new(spawn));
        self
    }

    /// Every command run (`program arg arg…`) and program spawned (`spawn PATH K=V…`), in order.
    pub fn ran(&self) -> Vec<String> {
        self.ran.lock().unwrap().clone()
    }
}

impl System for ScriptedSystem {
    fn run(&self, program: &str, args: &[String]) -> io::Result<CommandOutput> {
        self.ran.lock().unwrap().push(
            std::iter::once(program.to_owned())
                .chain(args.iter().cloned())
                .collect::<Vec<_>>()
                .join(" "),
        );
        self.answers
            .lock()
            .unwrap()
            .get(program)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{program}: not found")))
    }

    fn spawn(&self, program: &Path, env: &[(String, String)]) -> io::Result<Box<dyn Spawned>> {
        let env_text: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        self.ran.lock().unwrap().push(format!(
            "spawn {} {}",
            program.display(),
            env_text.join(" ")
        ));
        match self.spawn.lock().unwrap().as_mut() {
            Some(spawn) => spawn(program, env),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no spawn scripted")),
        }
    }

    fn exists(&self, path: &Path) -> bool {
        self.existing.lock().unwrap().contains(path)
    }

    fn uid(&self) -> u32 {
        self.uid
    }
}

/// A spawned program whose exit the test decides ([`ScriptedChild::exit`]).
#[derive(Clone)]
pub struct ScriptedChild {
    pid: u32,
    exited: Arc<Mutex<Option<Option<i32>>>>,
}

impl ScriptedChild {
    pub fn new(pid: u32) -> ScriptedChild {
        ScriptedChild {
            pid,
            exited: Arc::new(Mutex::new(None)),
        }
    }

    /// From now on it has exited with `code` (`None`: a signal).
    pub fn exit(&self, code: Option<i32>) {
        *self.exited.lock().unwrap() = Some(code);
    }
}

impl Spawned for ScriptedChild {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn try_wait(&mut self) -> io::Result<Option<Option<i32>>> {
        Ok(*self.exited.lock().unwrap())
    }
}

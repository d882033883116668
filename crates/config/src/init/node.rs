//! A Node project's gates: the install its lockfile calls for, then the
//! package.json scripts.

use std::path::Path;

use super::GateLine;

/// The lockfile at the repo root, which decides the install command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeLock {
    /// `package-lock.json` (or `npm-shrinkwrap.json`): `npm ci`.
    Npm,
    /// `yarn.lock`; `berry` for Yarn 2 and later (`__metadata:` in it).
    Yarn { berry: bool },
    /// `pnpm-lock.yaml`.
    Pnpm,
    /// None: `npm install`, since `npm ci` needs a lockfile.
    #[default]
    None,
}

/// What `graft init` learned about a Node project (the binary looks).
#[derive(Debug, Clone, Default)]
pub struct NodeProbe {
    /// The `scripts` keys of package.json.
    pub scripts: Vec<String>,
    /// package.json's `main`, the file a `node FILE` recipe runs.
    pub main: Option<String>,
    pub lock: NodeLock,
}

impl NodeProbe {
    /// package.json's scripts and main, and the lockfile beside it.
    pub fn read(root: &Path) -> NodeProbe {
        let package: Option<serde_json::Value> = std::fs::read_to_string(root.join("package.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let scripts = package
            .as_ref()
            .and_then(|v| v.get("scripts")?.as_object().map(|o| o.keys().cloned().collect()))
            .unwrap_or_default();
        let main = package
            .as_ref()
            .and_then(|v| v.get("main")?.as_str().map(String::from));
        let has = |f: &str| root.join(f).is_file();
        let lock = if has("package-lock.json") || has("npm-shrinkwrap.json") {
            NodeLock::Npm
        } else if has("yarn.lock") {
            let text = std::fs::read_to_string(root.join("yarn.lock")).unwrap_or_default();
            NodeLock::Yarn {
                berry: text.contains("__metadata:"),
            }
        } else if has("pnpm-lock.yaml") {
            NodeLock::Pnpm
        } else {
            NodeLock::None
        };
        NodeProbe { scripts, main, lock }
    }

    /// The install, build, lint, test and audit gates, and what to tell the
    /// user.
    pub(super) fn gates(&self, installed: &dyn Fn(&str) -> bool, notes: &mut Vec<String>) -> Vec<GateLine> {
        let npm = |line: GateLine| line.needs("npm", "https://nodejs.org");
        let mut gates = vec![match self.lock {
            NodeLock::Npm => npm(GateLine::new(
                "install",
                "build",
                "npm ci --no-audit --no-fund",
                "15m",
            )),
            NodeLock::None => {
                notes.push("node: no package-lock.json, so the install gate runs `npm install` (`npm ci` needs a lockfile and fails without one); run `npm install` here and commit the package-lock.json it writes for the same install every time, then `graft init --force` for `npm ci`".to_string());
                npm(GateLine::new(
                    "install",
                    "build",
                    "npm install --no-audit --no-fund",
                    "15m",
                ))
            }
            NodeLock::Yarn { berry } => {
                let command = if berry {
                    "yarn install --immutable"
                } else {
                    "yarn install --frozen-lockfile"
                };
                self.frozen_install("yarn", "yarn.lock", command, installed, notes)
            }
            NodeLock::Pnpm => self.frozen_install(
                "pnpm",
                "pnpm-lock.yaml",
                "pnpm install --frozen-lockfile",
                installed,
                notes,
            ),
        }];
        let has = |s: &str| self.scripts.iter().any(|x| x == s);
        if has("build") {
            gates.push(GateLine::new("build", "build", "npm run build", "15m"));
        }
        if has("lint") {
            gates.push(GateLine::new("lint", "lint", "npm run lint", "10m"));
        }
        if has("test") {
            gates.push(GateLine::new("test", "test", "npm test", "20m"));
        } else {
            notes.push("node: package.json has no `test` script, so there is no test gate; add one (`\"test\": \"node --test\"` runs Node's own test runner) and run `graft init --force`".to_string());
        }
        // `npm audit` reads package-lock.json (`npm install` writes one in
        // staging first); the other managers audit their own lockfiles.
        if matches!(self.lock, NodeLock::Npm | NodeLock::None) {
            gates.push(
                npm(GateLine::new(
                    "audit",
                    "audit",
                    "npm audit --audit-level=high",
                    "5m",
                ))
                .advisory(),
            );
        }
        gates
    }

    fn frozen_install(
        &self,
        tool: &'static str,
        lockfile: &str,
        command: &str,
        installed: &dyn Fn(&str) -> bool,
        notes: &mut Vec<String>,
    ) -> GateLine {
        let how = "corepack enable";
        if !installed(tool) {
            notes.push(format!(
                "node: {lockfile} found, but `{tool}` is not on PATH, so the install gate (`{command}`) is written commented out; install it (`{how}`, Node ships corepack) and run `graft init --force`"
            ));
        }
        GateLine::new("install", "build", command, "15m")
            .needs(tool, how)
            .said()
    }
}

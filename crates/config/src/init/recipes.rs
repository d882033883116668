//! The `[run]` recipes `graft init` writes, commented: how common servers
//! take their listening socket from Graft (fd 3) and answer its readiness
//! check. README.md, "Recipes: taking the socket from Graft", has the same
//! recipes with the code each app needs; the integration tests run the
//! gunicorn, uvicorn and Node ones as written here.

use super::python::PythonEnv;
use super::{Ecosystem, toml_string};

/// One recipe: its title line and the TOML it would add, uncommented.
pub struct Recipe {
    pub name: &'static str,
    pub about: &'static str,
    pub toml: String,
}

/// The heading of each recipe in graft.toml: `# --- NAME: ABOUT`. Tests
/// find a recipe by it.
pub fn heading(name: &str) -> String {
    format!("# --- {name}:")
}

fn listen(port: u16) -> String {
    format!(
        "[[run.listen]]\n{}\naddress = \"127.0.0.1:{port}\"\n",
        commented("name = \"http\"", "fd 3")
    )
}

/// `line` with `comment` after it, in the column the README's examples use.
fn commented(line: &str, comment: &str) -> String {
    format!("{line:<31} # {comment}")
}

/// The recipes for `ecosystems` (all of them when none was found).
/// `python` says where gunicorn and uvicorn are run from; `node_main` and
/// `cargo_bin` name the program to run.
pub fn recipes(
    ecosystems: &[Ecosystem],
    python: &PythonEnv,
    node_main: Option<&str>,
    cargo_bin: Option<&str>,
) -> Vec<Recipe> {
    let all = ecosystems.is_empty();
    let wants = |e: Ecosystem| all || ecosystems.contains(&e);
    let mut out = Vec::new();
    if wants(Ecosystem::Python) {
        // gunicorn reads LISTEN_FDS itself when LISTEN_PID is its own pid
        // (exec'ed) and serves every socket passed; `--bind fd://3` on top
        // would take fd 3 twice and fail. Through `uv run` its pid differs
        // and it needs the flags.
        let binds = if *python == PythonEnv::UvRun {
            " --bind fd://3 --bind fd://4"
        } else {
            ""
        };
        out.push(Recipe {
            name: "gunicorn",
            about: "WSGI; it reads LISTEN_FDS: fd 3, and fd 4 (health) for the check",
            toml: format!(
                "[run]\ncommand = {}\n\n{}\n[health]\nready = \"http\"\n{}\n",
                toml_string(&format!("{}{binds} app:app", python.program("gunicorn"))),
                listen(8000),
                commented("http_path = \"/\"", "any path the app answers with 2xx")
            ),
        });
        out.push(Recipe {
            name: "uvicorn",
            about: "ASGI on fd 3; the app says READY=1 at lifespan startup",
            toml: format!(
                "[run]\ncommand = {}\n\n{}\n[health]\nready = \"notify\"\n",
                toml_string(&format!("{} --fd 3 app:app", python.program("uvicorn"))),
                listen(8000)
            ),
        });
    }
    if wants(Ecosystem::Node) {
        let main = node_main.unwrap_or("server.js");
        out.push(Recipe {
            name: "node",
            about: "server.listen({fd: 3}), a second server on {fd: 4} for health",
            toml: format!(
                "[run]\n{}\n\n{}\n[health]\nready = \"http\"\nhttp_path = \"/health\"\n",
                commented(
                    &format!("command = {}", toml_string(&format!("node {main}"))),
                    "node itself: `npm start` would not pass fd 3 on"
                ),
                listen(3000)
            ),
        });
    }
    if wants(Ecosystem::Go) {
        out.push(Recipe {
            name: "go",
            about: "net.FileListener(os.NewFile(3, \"http\")), fd 4 for health",
            toml: format!(
                "[run]\ncommand = \"bin/server\"\nbuild = \"go build -o bin/server .\"\nartifacts = [\"bin/server\"]\n\n{}\n[health]\nready = \"http\"\nhttp_path = \"/health\"\n",
                listen(8080)
            ),
        });
    }
    if wants(Ecosystem::Cargo) {
        let bin = format!("target/release/{}", cargo_bin.unwrap_or("app"));
        out.push(Recipe {
            name: "rust",
            about: "listenfd: take_tcp_listener(0) is fd 3, (1) the health fd",
            toml: format!(
                "[run]\ncommand = {}\nbuild = \"cargo build --release\"\nartifacts = [{}]\n\n{}\n[health]\nready = \"http\"\nhttp_path = \"/health\"\n",
                toml_string(&bin),
                toml_string(&bin),
                listen(8080)
            ),
        });
    }
    out
}

/// The recipes as comments, after a paragraph saying what they are for.
pub fn render(recipes: &[Recipe]) -> String {
    let mut out = String::from(
        "\n# Running it: `graft run` supervises [run] `command` (exec'ed by sh in\n\
         # the release's directory; `$GRAFT_REPO_ROOT` is the main checkout). It\n\
         # binds each [[run.listen]] once and passes it to every release as fd 3,\n\
         # 4, ... (LISTEN_FDS, LISTEN_FDNAMES), then the release's private `health`\n\
         # socket (fd 4 with one listen socket). Uncomment one recipe; README.md,\n\
         # \"Recipes: taking the socket from Graft\", has the code each needs.\n",
    );
    for recipe in recipes {
        out.push('\n');
        out.push_str(&format!("{} {}\n", heading(recipe.name), recipe.about));
        for line in recipe.toml.lines() {
            if line.is_empty() {
                out.push_str("#\n");
            } else {
                out.push_str(&format!("# {line}\n"));
            }
        }
    }
    out
}

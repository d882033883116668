use super::*;

#[test]
fn debug_counts() {
    for (path, a, b, jt) in [("views/csrf.py", 12, 19, 57), ("core/handlers/base.py", 174, 181, 54), ("core/mail/__init__.py", 70, 81, 66), ("forms/models.py", 159, 167, 60), ("shortcuts.py", 31, 41, 50), ("utils/timezone.py", 213, 221, 57), ("db/backends/mysql/base.py", 323, 332, 81), ("db/models/query.py", 470, 485, 112), ("test/client.py", 1129, 1143, 54)] {
        let text = std::fs::read_to_string(format!("/tmp/w/django/{path}")).unwrap();
        let mut p = parser_for(Lang::Python);
        let f = analyze(Lang::Python, &text, &mut p);
        let n = f.token_lines.iter().filter(|&&l| l >= a && l <= b).count();
        println!("{path} {a}-{b}: ours {n} jscpd {jt} ratio {:.2}", jt as f64 / n as f64);
    }
}

//! The web client's files as the browser fetches them: every module under web/js is served,
//! with the type a module needs, and every module a file imports exists; the icon is an icon.

use std::path::Path;

use crate::helpers::*;

fn imports(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            l.split(" from '")
                .nth(1)
                .or_else(|| l.strip_prefix("import '"))
        })
        .filter_map(|rest| rest.split('\'').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_module_of_the_web_client_is_served_and_found() {
    let server = TestServer::start().await;
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("web");
    let mut files = vec![("app.js".to_string(), web.join("app.js"))];
    for entry in std::fs::read_dir(web.join("js")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        files.push((format!("js/{name}"), path));
    }
    assert!(files.len() > 5, "{files:?}");
    let served: Vec<String> = files.iter().map(|(n, _)| n.clone()).collect();
    for (name, path) in &files {
        let resp = server
            .http
            .get(server.url(&format!("/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "/{name}");
        let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(kind.starts_with("text/javascript"), "/{name}: {kind}");
        let body = resp.text().await.unwrap();
        assert_eq!(
            body,
            std::fs::read_to_string(path).unwrap(),
            "/{name} is the file"
        );
        let dir = Path::new(name).parent().unwrap();
        for import in imports(&body) {
            let target = dir.join(&import);
            let target = target
                .to_str()
                .unwrap()
                .replace("/./", "/")
                .trim_start_matches("./")
                .to_string();
            assert!(
                served.contains(&target),
                "{name} imports {import}, which is not served"
            );
        }
    }
    let resp = server
        .http
        .get(server.url("/favicon.ico"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/x-icon");
    assert_eq!(
        &resp.bytes().await.unwrap()[..4],
        &[0, 0, 1, 0],
        "an ICO file"
    );
}

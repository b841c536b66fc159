"""The filesystem endpoints and the network policy."""

from .conftest import Api


def test_it_writes_reads_lists_and_deletes_files(emu):
    api = Api(emu.url)
    api.create("files")
    write = api("PUT", "/v1/sprites/files/fs/write",
                params={"path": "config/openclaw.json", "workingDir": "/home/sprite/.openclaw",
                        "mode": "0600", "mkdirParents": "true"},
                data=b'{"gateway":{}}', headers={"Content-Type": "application/octet-stream"})
    assert write.status_code == 200
    assert write.json() == {"path": "/home/sprite/.openclaw/config/openclaw.json", "size": 14}
    read = api("GET", "/v1/sprites/files/fs/read", params={"path": "/home/sprite/.openclaw/config/openclaw.json"})
    assert read.content == b'{"gateway":{}}'
    listing = api("GET", "/v1/sprites/files/fs/list", params={"path": "/home/sprite/.openclaw/config"}).json()
    assert listing["count"] == 1 and listing["entries"][0]["mode"] == "0600"
    assert api("DELETE", "/v1/sprites/files/fs/delete", params={"path": "/home/sprite/.openclaw"}).status_code == 400
    deleted = api("DELETE", "/v1/sprites/files/fs/delete",
                  params={"path": "/home/sprite/.openclaw", "recursive": "true"})
    assert deleted.status_code == 200
    absent = api("GET", "/v1/sprites/files/fs/read", params={"path": "/home/sprite/.openclaw/config/openclaw.json"})
    assert absent.status_code == 404 and absent.json()["error"]


def test_it_sets_and_validates_the_network_policy(emu):
    api = Api(emu.url)
    api.create("net")
    assert api("GET", "/v1/sprites/net/policy/network").json() == {"rules": []}
    rules = [{"domain": "api.anthropic.com", "action": "allow"}, {"include": "defaults"},
             {"domain": "*", "action": "deny"}]
    response = api("POST", "/v1/sprites/net/policy/network", json={"rules": rules})
    assert response.status_code == 204
    assert api("GET", "/v1/sprites/net/policy/network").json() == {"rules": rules}
    for bad in [{"rules": [{"domain": "x.com", "action": "maybe"}]}, {"rules": [{"include": "all"}]},
                {"rules": "nope"}, {}]:
        response = api("POST", "/v1/sprites/net/policy/network", json=bad)
        assert response.status_code == 400 and response.json() == {"error": "invalid policy"}

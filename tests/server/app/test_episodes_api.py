"""Episodes, export and auth REST routes with the real app and store."""

from __future__ import annotations

import io
import time
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
from app_helpers import PASSWORD, auth, wait_until
from fastapi.testclient import TestClient

from server.fake_bridge import FakeBridge
from server.store import EpisodeStore, Store
from tandem.episodes import EpisodeMeta, EpisodeWriter, StepData
from tandem.messages import ActionSource, EpisodeKind, LabelEpisode

pytestmark = pytest.mark.timeout(60)
CAMS = ("front", "wrist")
STEPS = 6


def image(step: int, cam: int) -> np.ndarray:
    img = np.zeros((32, 32, 3), np.uint8)
    img[..., 0] = step * 30
    img[..., 1] = cam * 100
    return img


def write_episode(
    store: EpisodeStore,
    episode_id: str,
    kind: EpisodeKind,
    started: float,
    intervene: tuple[int, ...] = (),
) -> None:
    meta = EpisodeMeta(
        robot_id="robot0",
        episode_id=episode_id,
        kind=kind,
        cameras=list(CAMS),
        image_shape=[32, 32, 3],
        state_dim=3,
        started_wall=started,
        operator="alice",
    )
    writer = EpisodeWriter(store.episodes_root, meta)
    for step in range(STEPS):
        human = step in intervene
        writer.append(
            StepData(
                state=np.full(3, step, np.float32),
                action=np.full(7, step / 10, np.float32),
                images={c: image(step, i) for i, c in enumerate(CAMS)},
                policy_action=np.zeros(7, np.float32),
                human_action=np.ones(7, np.float32) if human else None,
                reward=float(step),
                intervention=human,
                action_source=ActionSource.HUMAN if human else ActionSource.POLICY,
                step=step,
                t_wall=started + step,
            )
        )
    writer.finish(terminated=True)


@pytest.fixture
def seeded(client: TestClient, store: Store) -> list[str]:
    base = time.time() - 1000
    write_episode(store.episodes, "demo1", EpisodeKind.DEMO, base)
    write_episode(store.episodes, "roll1", EpisodeKind.ROLLOUT, base + 100, intervene=(2, 3))
    write_episode(store.episodes, "roll2", EpisodeKind.ROLLOUT, base + 200)
    store.episodes.reconcile()
    return ["roll2", "roll1", "demo1"]  # newest first


def test_list_filters_and_pagination(client: TestClient, tokens: dict, seeded: list[str]) -> None:
    h = auth(tokens["viewer"])
    page = client.get("/api/episodes", headers=h).json()
    assert page["total"] == 3 and [e["id"] for e in page["items"]] == seeded
    page = client.get("/api/episodes?limit=1&offset=1", headers=h).json()
    assert page["total"] == 3 and [e["id"] for e in page["items"]] == ["roll1"]
    kinds = client.get("/api/episodes?kind=demo", headers=h).json()
    assert [e["id"] for e in kinds["items"]] == ["demo1"]
    assert client.get("/api/episodes?robot=nope", headers=h).json()["total"] == 0
    assert client.get("/api/episodes?operator=alice&complete=true", headers=h).json()["total"] == 3
    assert client.get("/api/episodes?outcome=unlabeled", headers=h).json()["total"] == 3
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 850))
    assert [
        e["id"] for e in client.get(f"/api/episodes?since={since}", headers=h).json()["items"]
    ] == ["roll2"]
    assert client.get("/api/episodes?limit=0", headers=h).status_code == 422
    assert client.get("/api/episodes?kind=dance", headers=h).status_code == 422
    assert client.get("/api/episodes").status_code == 401


def test_get_with_interventions_frames_and_arrays(
    client: TestClient, tokens: dict, seeded: list[str]
) -> None:
    h = auth(tokens["viewer"])
    detail = client.get("/api/episodes/roll1", headers=h).json()
    assert detail["length"] == STEPS and detail["intervention_count"] == 1
    assert (
        detail["interventions"] == [{"start_step": 2, "end_step": 4, "operator": None}]
        or detail["interventions"][0]["start_step"] == 2
    )
    assert client.get("/api/episodes/missing", headers=h).status_code == 404
    frame = client.get("/api/episodes/roll1/frames/wrist/4", headers=h)
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(frame.content, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert img.shape == (32, 32, 3) and abs(int(img[..., 0].mean()) - 120) < 8
    assert abs(int(img[..., 1].mean()) - 100) < 8
    assert client.get("/api/episodes/roll1/frames/wrist/99", headers=h).status_code == 404
    assert client.get("/api/episodes/roll1/frames/top/0", headers=h).status_code == 404
    arrays = client.get("/api/episodes/roll1/arrays", headers=h).json()
    assert arrays["length"] == STEPS and arrays["cameras"] == list(CAMS)
    assert arrays["intervention"] == [False, False, True, True, False, False]
    assert arrays["action_source"][2] == "human" and arrays["action_source"][0] == "policy"
    assert arrays["human_action"][0] == [None] * 7 and arrays["human_action"][2] == [1.0] * 7
    assert arrays["reward"] == [float(i) for i in range(STEPS)]
    npz = client.get("/api/episodes/roll1/arrays?format=npz", headers=h)
    with np.load(io.BytesIO(npz.content), allow_pickle=False) as data:
        assert data["action"].shape == (STEPS, 7) and data["intervention"].sum() == 2


def test_label_notes_discard_restore(
    client: TestClient, tokens: dict, seeded: list[str], bridge: FakeBridge
) -> None:
    h = auth(tokens["op"])
    bridge.publish_status()
    link = client.app.state.tandem.link  # type: ignore[attr-defined]
    wait_until(lambda: bridge.publish_status() or link.robots(), what="robot id")
    out = client.post("/api/episodes/roll1/label", json={"outcome": "success"}, headers=h).json()
    assert out["outcome"] == "success" and out["labeled_by"] == "op"
    relabel = bridge.wait_for("label_episode")
    assert relabel and isinstance(relabel[0].command.body, LabelEpisode)
    assert relabel[0].command.body.episode_id == "roll1"
    assert (
        client.post("/api/episodes/roll1/label", json={"outcome": "meh"}, headers=h).status_code
        == 422
    )
    assert (
        client.post("/api/episodes/roll1/notes", json={"notes": "cube slipped"}, headers=h).json()[
            "notes"
        ]
        == "cube slipped"
    )
    assert client.post("/api/episodes/roll1/discard", headers=h).json()["discarded"] is True
    assert client.get("/api/episodes?discarded=true", headers=h).json()["total"] == 1
    assert client.post("/api/episodes/roll1/restore", headers=h).json()["discarded"] is False
    assert client.post("/api/episodes/nope/discard", headers=h).status_code == 404


def test_viewer_and_anonymous_cannot_mutate(
    client: TestClient, tokens: dict, seeded: list[str]
) -> None:
    calls = [
        ("post", "/api/episodes/roll1/label", {"outcome": "failure"}),
        ("post", "/api/episodes/roll1/notes", {"notes": "x"}),
        ("post", "/api/episodes/roll1/discard", None),
        ("post", "/api/episodes/roll1/restore", None),
        ("delete", "/api/episodes/roll1?confirm=roll1", None),
        ("post", "/api/export", {"episode_ids": ["roll1"]}),
        ("post", "/api/estop/clear", {}),
        (
            "post",
            "/api/auth/operators",
            {"name": "eve", "password": "12345678", "role": "operator"},
        ),
    ]
    for method, url, body in calls:
        kwargs = {} if body is None else {"json": body}
        assert (
            client.request(method, url, headers=auth(tokens["viewer"]), **kwargs).status_code == 403
        ), url
        assert client.request(method, url, **kwargs).status_code == 401, url
    detail = client.get("/api/episodes/roll1", headers=auth(tokens["viewer"])).json()
    assert detail["outcome"] is None and detail["notes"] == "" and not detail["discarded"]


def test_delete_needs_confirmation(
    client: TestClient, tokens: dict, seeded: list[str], store: Store
) -> None:
    h = auth(tokens["op"])
    path = store.episodes.episode_dir("demo1")
    assert client.delete("/api/episodes/demo1", headers=h).status_code == 422
    assert client.delete("/api/episodes/demo1?confirm=roll1", headers=h).status_code == 400
    assert client.delete("/api/episodes/demo1?confirm=demo1", headers=h).status_code == 204
    assert client.get("/api/episodes/demo1", headers=h).status_code == 404
    assert not path.exists()
    assert client.delete("/api/episodes/demo1?confirm=demo1", headers=h).status_code == 404


def test_export_hdf5_download(
    client: TestClient, tokens: dict, seeded: list[str], tmp_path: Path
) -> None:
    h = auth(tokens["op"])
    response = client.post("/api/export", json={"episode_ids": ["demo1", "roll1"]}, headers=h)
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-hdf5"
    out = tmp_path / "export.hdf5"
    out.write_bytes(response.content)
    with h5py.File(out, "r") as f:
        assert sorted(f["data"].keys()) == ["demo_0", "demo_1"]
        demo = f["data/demo_1"]
        assert demo.attrs["episode_id"] == "roll1"
        assert demo["actions"].shape == (STEPS, 7) and demo["rewards"].shape == (STEPS,)
        assert demo["obs/front_image"].shape == (STEPS, 32, 32, 3)
        assert demo["dones"][-1] == 1
    assert client.post("/api/export", json={"episode_ids": ["nope"]}, headers=h).status_code == 404
    assert client.post("/api/export", json={"episode_ids": []}, headers=h).status_code == 422


def test_recorded_episode_from_bridge_appears_in_api(
    client: TestClient, tokens: dict, bridge: FakeBridge
) -> None:
    """The whole path: bridge publishes steps -> recorder writes -> API serves them."""
    h = auth(tokens["viewer"])
    cams = {"front": image(1, 0), "wrist": image(1, 1)}
    # PUB drops messages until a SUB is connected: wait for the app's own SUB (started
    # with the recorder's in the lifespan), then give the recorder's a moment too.
    link = client.app.state.tandem.link  # type: ignore[attr-defined]
    wait_until(lambda: bridge.publish_status() or link.robots(), what="bridge subscription")
    time.sleep(0.3)
    bridge.publish_episode("live1", "start", kind=EpisodeKind.DEMO)
    for step in range(5):
        bridge.publish_step("live1", step, kind=EpisodeKind.DEMO, images=cams, reward=0.5)
    bridge.publish_episode(
        "live1",
        "end",
        kind=EpisodeKind.DEMO,
        reason="operator_label",
        outcome="success",
        num_steps=5,
        final_state=[5.0, 0.0, 0.0],
    )
    ep = wait_until(
        lambda: (
            (r := client.get("/api/episodes/live1", headers=h)).status_code == 200
            and not r.json()["recording"]
            and r.json()
        ),
        what="recorded episode",
    )
    assert ep["length"] == 5 and ep["outcome"] == "success" and ep["complete"] is True
    frame = client.get("/api/episodes/live1/frames/front/4", headers=h)
    assert frame.status_code == 200


def test_auth_login_exchange_cookie_logout(client: TestClient, store: Store) -> None:
    store.auth.create_operator("carol", "operator", PASSWORD)
    assert (
        client.post("/api/auth/login", json={"name": "carol", "password": "wrong"}).status_code
        == 401
    )
    login = client.post("/api/auth/login", json={"name": "carol", "password": PASSWORD})
    assert login.status_code == 200 and login.json()["user"]["role"] == "operator"
    assert client.get("/api/auth/me").json()["name"] == "carol"  # via the cookie
    token = login.json()["token"]
    client.cookies.clear()
    assert client.get("/api/auth/me", headers=auth(token)).json()["name"] == "carol"
    assert client.get(f"/api/auth/me?token={token}").status_code == 200
    made = client.post(
        "/api/auth/operators",
        headers=auth(token),
        json={"name": "vic", "password": "viewer-pass", "role": "viewer"},
    )
    assert made.status_code == 201 and made.json()["role"] == "viewer"
    dup = client.post(
        "/api/auth/operators",
        headers=auth(token),
        json={"name": "vic", "password": "viewer-pass", "role": "viewer"},
    )
    assert dup.status_code == 409
    assert [o["name"] for o in client.get("/api/auth/operators", headers=auth(token)).json()][
        -1
    ] == "vic"
    assert client.post("/api/auth/logout", headers=auth(token)).status_code == 204
    assert client.get("/api/auth/me", headers=auth(token)).status_code == 401


def test_one_time_login_link(client: TestClient) -> None:
    url = client.app.state.tandem.login_url  # type: ignore[attr-defined]
    assert "/login?token=" in url
    path = url[url.index("/login") :]
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    assert client.get("/api/auth/me").json()["name"] == "admin"
    client.cookies.clear()
    assert client.get(path, follow_redirects=False).status_code == 401  # used up
    _, token = client.app.state.tandem.store.auth.ensure_default_operator()  # type: ignore[attr-defined]
    swapped = client.post("/api/auth/exchange", json={"token": token})
    assert swapped.status_code == 200 and swapped.json()["token"] != token
    assert client.post("/api/auth/exchange", json={"token": token}).status_code == 401

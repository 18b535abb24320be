"""`cli.py token`: least-privilege join tokens that dispatch our agent."""

import jwt
import pytest

from tests.support.stack import make_stack_dir

pytestmark = pytest.mark.unit


def decode(token: str, secret: str) -> dict:
    return jwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False})


def test_token_grants_one_room_the_mic_and_dispatches_the_agent(tmp_path):
    stack = make_stack_dir(tmp_path, 24000)
    result = stack.cli("token", "--room", "demo", "--identity", "alice", "--ttl", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "LIVEKIT_URL=ws://127.0.0.1:24001"
    claims = decode(lines[-1], stack.settings.api_secret)
    assert claims["sub"] == "alice"
    assert claims["exp"] - claims["nbf"] == 300
    video = claims["video"]
    assert video["room"] == "demo" and video["roomJoin"] is True
    assert video["canPublishSources"] == ["microphone"]
    assert video["canSubscribe"] and video["canPublishData"]
    assert not any(video.get(k) for k in ("roomAdmin", "roomCreate", "roomList", "roomRecord", "ingressAdmin"))
    assert claims["roomConfig"]["agents"][0]["agentName"] == "phone-assistant"
    with_camera = stack.cli("token", "--room", "demo", "--camera")
    assert sorted(decode(with_camera.stdout.strip().splitlines()[-1], stack.settings.api_secret)["video"][
        "canPublishSources"]) == ["camera", "microphone"]


def test_token_without_credentials_is_one_clear_line(tmp_path):
    env = tmp_path / ".env"
    env.write_text("LIVEKIT_URL=ws://127.0.0.1:24001\n")
    from tests.support.stack import RunningStack

    result = RunningStack(env, tmp_path / "run").cli("token")
    assert result.returncode == 1
    assert "python cli.py up" in result.stderr and "Traceback" not in result.stderr

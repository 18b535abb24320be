// The playground page: connect to LiveKit, talk to the agent, read the conversation.
// Transcripts come from the agent's `lk.transcription` text streams; its state from `lk.agent.state`.
const { Room, RoomEvent, Track, ParticipantKind } = LivekitClient;
const AGENT_JOIN_TIMEOUT_MS = 20000;
const $ = (id) => document.getElementById(id);
let room = null;
const segments = new Map(); // segment id -> <li>

function setStatus(text) { $("status").textContent = text; }
function showError(text) { const el = $("error"); el.textContent = text; el.hidden = !text; }
function setAgentState(state) {
  const el = $("agent-state");
  el.dataset.state = state;
  el.textContent = `agent: ${state}`;
  el.dataset.seen = `${el.dataset.seen || ""} ${state}`.trim();
}

function showSegment(id, text, fromAgent, final) {
  let li = segments.get(id);
  if (!li) {
    li = document.createElement("li");
    li.className = fromAgent ? "agent" : "user";
    segments.set(id, li);
    $("transcript").appendChild(li);
  }
  li.textContent = text;
  li.classList.toggle("interim", !final);
}

async function readTranscription(reader, participantInfo) {
  const attrs = reader.info.attributes || {};
  const id = attrs["lk.segment_id"] || reader.info.id;
  const fromAgent = participantInfo.identity !== room.localParticipant.identity;
  let text = "";
  for await (const chunk of reader) {
    text += chunk;
    showSegment(id, text, fromAgent, false);
  }
  // An agent segment streams its text and is final when its stream ends; the user's interim and final
  // transcripts arrive as separate streams of the same segment.
  showSegment(id, text, fromAgent, fromAgent || attrs["lk.transcription_final"] !== "false");
}

function meterFor(track, meterId) {
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  ctx.createMediaStreamSource(new MediaStream([track.mediaStreamTrack])).connect(analyser);
  const data = new Uint8Array(analyser.fftSize);
  const tick = () => {
    if (!room) return;
    analyser.getByteTimeDomainData(data);
    const peak = data.reduce((max, v) => Math.max(max, Math.abs(v - 128)), 0) / 128;
    $(meterId).value = peak;
    if (peak > 0.02) $(meterId).dataset.heard = "yes";
    requestAnimationFrame(tick);
  };
  ctx.resume().then(tick);
}

async function connect() {
  showError("");
  setStatus("Connecting…");
  let session;
  try {
    const response = await fetch("/api/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ camera: $("camera-on").checked }),
    });
    if (!response.ok) {
      const refusal = await response.json().catch(() => ({}));
      setStatus("Not connected");
      return showError(refusal.error || `The token endpoint answered ${response.status}.`);
    }
    session = await response.json();
  } catch (err) {
    setStatus("Not connected");
    return showError(`Cannot get a session from this server (${err.message}). Is \`python cli.py up\` running?`);
  }
  $("chat-input").maxLength = session.max_chat_chars;
  room = new Room({ adaptiveStream: true, dynacast: true });
  room.registerTextStreamHandler("lk.transcription", readTranscription);
  room.on(RoomEvent.ParticipantAttributesChanged, (changed, participant) => {
    if (changed["lk.agent.state"]) setAgentState(changed["lk.agent.state"]);
  });
  room.on(RoomEvent.TrackSubscribed, (track, _pub, participant) => {
    if (track.kind === Track.Kind.Audio) {
      const audio = track.attach();
      audio.id = "agent-audio";
      document.body.appendChild(audio);
      meterFor(track, "agent-level");
    }
  });
  room.on(RoomEvent.ParticipantConnected, (participant) => {
    if (participant.kind === ParticipantKind.AGENT) { setStatus(`Connected to ${session.room}, agent joined`); }
  });
  room.on(RoomEvent.Disconnected, () => disconnected("Disconnected"));
  try {
    await room.connect(session.url, session.token);
  } catch (err) {
    room = null;
    setStatus("Not connected");
    return showError(`Cannot reach the LiveKit server at ${session.url} (${err.message}). Is it running?`);
  }
  setStatus(`Connected to ${session.room}, waiting for the agent…`);
  $("connect").textContent = "Disconnect";
  $("chat-input").disabled = false;
  document.querySelector("#chat button").disabled = false;
  try {
    await room.localParticipant.setMicrophoneEnabled(true);
    meterFor(room.localParticipant.getTrackPublication(Track.Source.Microphone).track, "mic-level");
  } catch (err) {
    showError(`No microphone: ${err.message}. Allow microphone access in the browser and connect again; you can still type.`);
  }
  if (session.camera) {
    try {
      await room.localParticipant.setCameraEnabled(true);
      room.localParticipant.getTrackPublication(Track.Source.Camera).track.attach($("camera"));
    } catch (err) { /* a camera is optional */ }
  }
  setTimeout(() => {
    const agentHere = room && [...room.remoteParticipants.values()].some((p) => p.kind === ParticipantKind.AGENT);
    if (room && !agentHere) showError(`The agent did not join within ${AGENT_JOIN_TIMEOUT_MS / 1000} s. Check \`python cli.py status\` and \`python cli.py logs agent\`.`);
  }, AGENT_JOIN_TIMEOUT_MS);
}

function disconnected(text) {
  room = null;
  setStatus(text);
  setAgentState("disconnected");
  $("connect").textContent = "Connect";
  $("chat-input").disabled = true;
  document.querySelector("#chat button").disabled = true;
}

$("connect").addEventListener("click", async () => {
  if (room) { await room.disconnect(); disconnected("Disconnected"); } else { await connect(); }
});

$("chat").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!text || !room) return;
  $("chat-input").value = "";
  showSegment(`chat-${Date.now()}`, text, false, true);
  await room.localParticipant.sendText(text, { topic: "lk.chat" });
});

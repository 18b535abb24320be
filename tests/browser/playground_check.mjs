// Drives the playground page in Debian's Chromium with a fake microphone that plays a spoken question.
// Playwright gives it a fresh, empty profile.
// Usage: node playground_check.mjs URL QUESTION_WAV SCREENSHOT_PNG  -> prints one JSON line of observations.
import { chromium } from "../../playground/web/node_modules/playwright-core/index.mjs";

const [url, questionWav, screenshot] = process.argv.slice(2);
const deadline = Date.now() + 150_000;
const result = { connected: false, agentJoined: false, userText: "", agentText: "", statesSeen: "", agentAudioHeard: false, errors: [] };
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    `--use-file-for-fake-audio-capture=${questionWav}`, "--autoplay-policy=no-user-gesture-required"],
});
try {
  const page = await browser.newPage();
  page.on("pageerror", (err) => result.errors.push(String(err)));
  await page.goto(url);
  await page.click("#connect");
  const texts = async (cls) => (await page.$$eval(`#transcript li.${cls}`, (els) => els.map((e) => e.textContent))).join(" | ");
  while (Date.now() < deadline) {
    const status = await page.textContent("#status");
    result.connected ||= status.startsWith("Connected");
    result.agentJoined ||= status.includes("agent joined");
    result.userText = await texts("user");
    result.agentText = await texts("agent");
    result.statesSeen = (await page.getAttribute("#agent-state", "data-seen")) || "";
    result.agentAudioHeard = (await page.getAttribute("#agent-level", "data-heard")) === "yes";
    const answered = /hours/i.test(result.userText) && result.agentText.split(" | ").length >= 2;
    if (answered && /speaking/.test(result.statesSeen) && /thinking/.test(result.statesSeen)) break;
    await page.waitForTimeout(500);
  }
  result.error = await page.textContent("#error");
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

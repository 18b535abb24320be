// Drives the Calls page in Debian's Chromium while a real call is placed: the call must show as in progress, then
// as ended; opened, it must show its transcript, latency chart and (once the LLM has written it) its summary.
// Usage: node calls_check.mjs URL CALLER_NUMBER SCREENSHOT_PNG  -> prints one JSON line of observations.
import { chromium } from "../../playground/web/node_modules/playwright-core/index.mjs";

const [url, caller, screenshot] = process.argv.slice(2);
const deadline = Date.now() + 240_000;
const result = { sawInProgress: false, sawEnded: false, rowStatus: "", transcript: [], summary: "", chartBars: 0,
  facts: "", errors: [], requests: [] };
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (err) => result.errors.push(String(err)));
  page.on("console", (msg) => { if (msg.type() === "error") result.errors.push(msg.text()); });
  page.on("request", (req) => { if (!req.url().startsWith(new URL(url).origin)) result.requests.push(req.url()); });
  await page.goto(`${url}/calls`);
  await page.fill("#number", caller);
  await page.click("#filters button");
  const row = `#calls tbody tr:has(td:text-is("${caller}"))`;
  while (Date.now() < deadline && !result.sawEnded) {
    if (await page.$(row)) {
      result.rowStatus = await page.textContent(`${row} td:nth-child(4)`);
      result.sawInProgress ||= result.rowStatus === "in progress";
      result.sawEnded = result.rowStatus !== "in progress";
    }
    await page.waitForTimeout(500); // the page refreshes itself every 3 s while a call is in progress
    if (!(await page.$(row))) await page.click("#filters button"); // the call has not started yet: look again
  }
  await page.click(row);
  while (Date.now() < deadline) {
    result.transcript = await page.$$eval("#transcript li", (els) => els.map((e) => `${e.className}: ${e.childNodes[1]?.textContent ?? ""}`));
    result.summary = await page.textContent("#summary");
    result.chartBars = (await page.$$("#latency-chart rect.bar")).length;
    if (result.summary && result.transcript.length >= 2) break;
    await page.waitForTimeout(1000); // the page follows a just-ended call until its summary arrives
  }
  result.facts = await page.textContent("#call-facts");
  await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

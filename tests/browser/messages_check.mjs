// Opens one call on the Calls page in Debian's Chromium and prints the messages it shows, as one JSON line.
// Usage: node messages_check.mjs URL CALL_ID
import { chromium } from "../../playground/web/node_modules/playwright-core/index.mjs";

const [url, callId] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox"] });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(String(err)));
  await page.goto(`${url}/calls?id=${encodeURIComponent(callId)}`);
  await page.waitForSelector("#messages li", { timeout: 30_000 });
  const messages = await page.$$eval("#messages li", (items) => items.map((li) => ({
    text: li.textContent, open: li.classList.contains("open"), bold: li.querySelectorAll("b").length })));
  console.log(JSON.stringify({ messages, errors }));
} finally {
  await browser.close();
}

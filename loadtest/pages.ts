/**
 * Synthetic pages for translation benchmarks. `typical`: an intranet article page (navigation,
 * paragraphs of text, a few images and links; about one internal URL per 400 bytes, most
 * links relative). `dense`: a worst-case-like card grid where every few tags carry an internal
 * URL (about 12 per KiB). Both link to the app's own internal host, to another published app
 * and to unpublished hosts.
 */
export const BENCH_LINKS = [
  { internalUrl: "http://intranet.corp.local/", externalUrl: "https://intranet.contoso.com/" },
  { internalUrl: "http://expenses/", externalUrl: "https://expenses.contoso.com/" },
];

const HEAD = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Contoso intranet</title>
<link rel="stylesheet" href="http://intranet.corp.local/css/site.css">
<style>body{font:16px system-ui} .hero{background-image:url("http://intranet.corp.local/img/hero.jpg")} @import "http://expenses/css/embed.css";</style>
</head><body><nav><a href="http://intranet.corp.local/">Home</a> <a href="/news/">News</a> <a href="/people/">People</a>
<a href="http://expenses/">Expenses</a> <a href="/it/">IT help</a> <a href="http://hr.corp.local/">HR</a> <a href="/search">Search</a></nav>
`;
const TAIL = `<footer><a href="/about">About</a> · <a href="http://intranet.corp.local/privacy">Privacy</a></footer></body></html>\n`;

const ARTICLE = `<section class="article">
  <h2 id="q3">Third quarter: what changed and what comes next</h2>
  <p>Revenue grew in every region this quarter, led by the services business, which now accounts for more than a third of
  the total. Operating costs rose more slowly than sales, so margins improved for the fourth quarter in a row. Travel spending
  is back to its level of two years ago; see the <a href="http://expenses/reports/q3">expense report</a> for the details by
  department, and the <a href="/finance/guidelines">updated guidelines</a> for what is reimbursed from January.</p>
  <p>The new office in Lisbon opens in March. Teams moving there will hear from their managers this month; relocation questions
  go to <a href="mailto:moves@contoso.com">moves@contoso.com</a>. The all-hands recording is on the <a href="/video/all-hands">video page</a>.</p>
  <figure><img src="http://intranet.corp.local/img/q3-chart.png" alt="Revenue by region" width="640" height="360">
  <figcaption>Revenue by region, in millions, third quarter against the same quarter last year.</figcaption></figure>
  <ul><li><a href="/it/laptops">Laptop refresh</a> starts in the new year.</li><li>Security training is due by the end of the month.</li>
  <li>The cafeteria menu is <a href="https://www.example.org/menu">online</a>.</li></ul>
</section>
`;

const CARD = `<div class="card" style="background:url(http://intranet.corp.local/img/card.png) no-repeat">
  <h2><a href="http://intranet.corp.local/news/2026/11/quarterly-results">Quarterly results are in</a></h2>
  <p>Revenue grew in every region. Read the <a href="http://expenses/reports/q3?format=html">expense report</a> or the
  <a href="https://www.example.org/press">press release</a> &amp; the notes from the all-hands meeting.</p>
  <img src="http://intranet.corp.local/img/chart.png" srcset="http://intranet.corp.local/img/chart@2x.png 2x, http://intranet.corp.local/img/chart@3x.png 3x" alt="chart">
  <form action="http://expenses/claims/new" method="post"><input name="q" value="travel"><button formaction="http://expenses/claims/search">Search</button></form>
  <script src="http://intranet.corp.local/js/widgets.js"></script>
</div>
`;

function page(bytes: number, block: string): string {
  let body = "";
  while (HEAD.length + body.length + TAIL.length < bytes) body += block;
  return HEAD + body + TAIL;
}

/** An intranet article page of about `bytes` bytes. */
export function typicalPage(bytes: number): string {
  return page(bytes, ARTICLE);
}

/** A page of about `bytes` bytes with an internal URL every few tags. */
export function denseLinksPage(bytes: number): string {
  return page(bytes, CARD);
}

/** A stylesheet of about `bytes` bytes. */
export function sampleCss(bytes: number): string {
  const rule = `.card-%{border:1px solid #ddd;background:url(http://intranet.corp.local/img/bg-%.png) repeat-x}
.icon-%::before{content:"";background-image:url('http://expenses/icons/%.svg')}
.text-%{color:#333;margin:0 0 1rem;font-family:"Segoe UI",Roboto,sans-serif}
`;
  let css = `@import "http://intranet.corp.local/css/base.css";\n`;
  for (let i = 0; css.length < bytes; i++) css += rule.replaceAll("%", String(i));
  return css;
}

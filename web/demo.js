// The demo host page (/demo/<site>): fills in the embedding snippets for this gateway and
// site, places the live widget, and makes the Copy buttons work.
const gateway = new URL('../', import.meta.url).href.replace(/\/$/, ''); // this is /static/demo.js
const site = decodeURIComponent(location.pathname.replace(/\/+$/, '').split('/').pop());

const snippets = {
  'script-snippet':
    `<script type="module" src="${gateway}/widget.js"></script>\n` +
    `<click-to-call site="${site}"></click-to-call>`,
  'iframe-snippet':
    `<iframe src="${gateway}/embed/${site}" allow="microphone; autoplay"\n` +
    `        width="360" height="540" title="Call us"></iframe>`,
  'api-snippet':
    `<script type="module" src="${gateway}/widget.js"></script>\n` +
    `<click-to-call site="${site}" id="call-widget"></click-to-call>\n` +
    `<button type="button" id="talk-to-us">Talk to us</button>\n` +
    `<script type="module">\n` +
    `  const widget = document.getElementById('call-widget');\n` +
    `  document.getElementById('talk-to-us').addEventListener('click', () => widget.call());\n` +
    `  widget.addEventListener('statechange', (event) => console.log(event.detail.text));\n` +
    `  widget.addEventListener('ended', (event) => console.log('ended:', event.detail.cause));\n` +
    `</script>`,
};

document.getElementById('site-name').textContent = site;
for (const [id, text] of Object.entries(snippets)) document.getElementById(id).textContent = text;

const widget = document.createElement('click-to-call');
widget.setAttribute('site', site);
document.getElementById('widget-slot').append(widget);
document.getElementById('iframe-preview').src = `${gateway}/embed/${encodeURIComponent(site)}`;

for (const button of document.querySelectorAll('button.copy')) {
  button.addEventListener('click', async () => {
    const text = snippets[button.dataset.copy];
    const note = button.nextElementSibling;
    try {
      await navigator.clipboard.writeText(text);
      note.textContent = 'Copied.';
    } catch {
      // No clipboard permission: select the snippet so that Ctrl+C copies it.
      const range = document.createRange();
      range.selectNodeContents(document.getElementById(button.dataset.copy));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      note.textContent = 'Selected: press Ctrl+C (or ⌘C) to copy.';
    }
  });
}

// The click-to-call widget, loaded by one script tag:
//   <script type="module" src="https://call.example.com/widget.js"></script>
//   <click-to-call site="shop"></click-to-call>
// Load it from /widget.js (not /static/): its modules and the gateway's API are found
// relative to this address. See docs/embedding.md.
import { ClickToCall } from './widget/element.js';

if (!customElements.get('click-to-call')) customElements.define('click-to-call', ClickToCall);

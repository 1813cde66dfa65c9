// Building the widget's DOM without HTML parsing, so that nothing here depends on the host
// page's Trusted Types or Content-Security-Policy, and the widget's own icons.

/** `tag` with attributes and children (strings become text). */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  element.append(...children);
  return element;
}

const SVG = 'http://www.w3.org/2000/svg';
const HANDSET =
  'M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z';
const MIC = [
  ['rect', { x: '9', y: '3', width: '6', height: '11', rx: '3' }],
  ['path', { d: 'M5.5 11a6.5 6.5 0 0 0 13 0M12 17.5V21' }],
];
// Each icon: [shape, attributes] drawn in a 24 px box; filled ones say so.
const ICONS = {
  phone: { fill: true, shapes: [['path', { d: HANDSET }]] },
  'phone-down': { fill: true, shapes: [['path', { d: HANDSET, transform: 'rotate(135 12 12)' }]] },
  mic: { shapes: MIC },
  'mic-off': { shapes: [...MIC, ['path', { d: 'M4 3.5l16 17' }]] },
  keypad: {
    fill: true,
    shapes: [6, 12, 18].flatMap((y) => [6, 12, 18].map((x) => ['circle', { cx: String(x), cy: String(y), r: '2' }])),
  },
  close: { shapes: [['path', { d: 'M6 6l12 12M18 6L6 18' }]] },
  chat: { shapes: [['path', { d: 'M4 5.5h16v10H9l-4 3.5v-3.5H4z' }]] },
  check: { shapes: [['path', { d: 'M5 12.5l4.5 4.5L19 7.5' }]] },
  cross: { shapes: [['path', { d: 'M7 7l10 10M17 7L7 17' }]] },
  warning: { shapes: [['path', { d: 'M12 3.5L2.5 20h19zM12 10v4.5M12 17.5v.01' }]] },
  star: {
    fill: true,
    shapes: [['path', { d: 'M12 2.5l2.9 6.1 6.6.8-4.9 4.6 1.3 6.5L12 17.3l-5.9 3.2 1.3-6.5-4.9-4.6 6.6-.8z' }]],
  },
};

/** An icon of ICONS, hidden from assistive technology (its button has words). */
export function icon(name) {
  const { fill = false, shapes } = ICONS[name];
  const svg = document.createElementNS(SVG, 'svg');
  const attributes = { viewBox: '0 0 24 24', 'aria-hidden': 'true', focusable: 'false', class: `icon icon-${name}` };
  if (fill) {
    attributes.fill = 'currentColor';
  } else {
    Object.assign(attributes, { fill: 'none', stroke: 'currentColor', 'stroke-width': '2', 'stroke-linecap': 'round' });
  }
  for (const [key, value] of Object.entries(attributes)) svg.setAttribute(key, value);
  for (const [tag, shapeAttributes] of shapes) {
    const shape = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(shapeAttributes)) shape.setAttribute(key, value);
    svg.append(shape);
  }
  return svg;
}

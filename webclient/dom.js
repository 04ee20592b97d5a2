// Building DOM without markup strings: text always goes in as text, never as HTML, so nothing a
// server or user sent can become an element or a script (and the page needs no inline markup
// that its Content-Security-Policy would refuse).

/**
 * h('button', { type: 'button', class: 'button', dataset: { testid: 'x' }, onclick: fn }, 'Text')
 * Attributes named on* become event listeners; `dataset` fills data-*; booleans toggle.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'dataset') Object.assign(element.dataset, value);
    else if (name.startsWith('on') && typeof value === 'function') element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

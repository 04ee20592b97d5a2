// Copying to the clipboard where the browser allows it (a secure context and permission).

/** True when the text is on the clipboard; false when the browser refused (the caller then
 * leaves the text selected in a field for the user to copy). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

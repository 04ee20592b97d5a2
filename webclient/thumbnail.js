// Image thumbnails made in the browser from the local file before it is uploaded: a small WebP
// (or JPEG) data URL that travels as the upload's `thumbnail` metadata value. The server refuses
// one longer than THUMBNAIL_MAX characters, so sizes and qualities are tried until one fits.

export const THUMBNAIL_MAX = 2048;
const EDGES = [64, 48, 32];
const QUALITIES = [0.7, 0.5, 0.3];
const TYPES = ['image/webp', 'image/jpeg'];
const LARGEST_SOURCE = 64 * 1024 * 1024; // decoding a bigger image is not worth a preview
const TIME_LIMIT_MS = 3000;

/** A data URL of at most `maxLength` characters, or null (not an image, or it failed). */
export async function makeThumbnail(file, { maxLength = THUMBNAIL_MAX } = {}) {
  if (!String(file?.type ?? '').startsWith('image/') || file.size > LARGEST_SOURCE) return null;
  if (typeof createImageBitmap !== 'function' || typeof document === 'undefined') return null;
  let bitmap;
  try {
    bitmap = await createImageBitmap(file);
  } catch {
    return null; // not decodable (e.g. an SVG or a damaged file): the type icon will do
  }
  try {
    for (const edge of EDGES) {
      const scale = Math.min(1, edge / Math.max(bitmap.width, bitmap.height));
      const canvas = document.createElement('canvas');
      canvas.width = Math.max(1, Math.round(bitmap.width * scale));
      canvas.height = Math.max(1, Math.round(bitmap.height * scale));
      canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      for (const quality of QUALITIES) {
        for (const type of TYPES) {
          const url = canvas.toDataURL(type, quality);
          if (url.startsWith(`data:${type};base64,`) && url.length <= maxLength) return url;
        }
      }
    }
    return null;
  } finally {
    bitmap.close?.();
  }
}

/** `makeThumbnail`, but never waiting longer than a moment: the upload must not wait for it. */
export function thumbnailSoon(file) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(null), TIME_LIMIT_MS);
  });
  return Promise.race([makeThumbnail(file).catch(() => null), late]).finally(() => clearTimeout(timer));
}

/** Optional HTML sanitisation of outputs for clients that render HTML (a thin wrapper over sanitize-html). */
import sanitize from 'sanitize-html';
import { hostAllowed, parseUrl } from './urls.js';

/** Options of {@link sanitizeHtml}. */
export interface SanitizeHtmlOptions {
  /** Hosts that `href`/`src` may point to (exact, or `*.example.com`). Others are dropped. */
  allowHosts?: readonly string[];
  /** Whether `<img>` is kept at all (only with an allowed host). Default false. */
  allowImages?: boolean;
  /** Extra tags to allow beyond sanitize-html's defaults. */
  extraTags?: string[];
}

/** Sanitises HTML from a model: no scripts, styles, forms or iframes; links/images only to allowed hosts. */
export function sanitizeHtml(html: string, opts: SanitizeHtmlOptions = {}): string {
  const allowHosts = opts.allowHosts ?? [];
  const tags = [...sanitize.defaults.allowedTags, ...(opts.extraTags ?? [])].filter((t) => !['iframe', 'script', 'style', 'form'].includes(t));
  if (opts.allowImages) tags.push('img');
  return sanitize(html, {
    allowedTags: tags,
    allowedAttributes: { a: ['href', 'title'], img: ['src', 'alt', 'title', 'width', 'height'] },
    allowedSchemes: ['http', 'https', 'mailto'],
    allowedSchemesByTag: { img: ['https'] },
    allowProtocolRelative: false,
    disallowedTagsMode: 'discard',
    transformTags: {
      a: (tagName, attribs) => {
        const href = attribs.href;
        if (href && !hostAllowed(parseUrl(href).host, allowHosts)) {
          const { href: _dropped, ...rest } = attribs;
          return { tagName: 'span', attribs: rest };
        }
        return { tagName, attribs };
      },
    },
    exclusiveFilter: (frame) => frame.tag === 'img' && !hostAllowed(parseUrl(frame.attribs.src ?? '').host, allowHosts),
  });
}

"""What the proxy changes on the way through: the path asked for (checked, one decoding),
redirects (kept under the proxy), the token (masked in every reply), and HTML pages (a
shim that keeps the page's own calls under the proxy)."""

from __future__ import annotations

import json
import re
from urllib.parse import quote, unquote, urljoin, urlsplit

from ..core.auth import Token
from .errors import ApiError


def upstream_path(raw: str) -> str:
    """The path to ask the dashboard for, from the raw (percent-encoded) rest of the route.

    Each segment is decoded once and checked: ``.``/``..`` (also ``%2e%2e``), an encoded
    slash or backslash, or a control character (CR/LF, NUL) is 400. Empty segments collapse,
    so the path can never name another host (``//evil``). What is left is re-encoded, so
    the dashboard sees exactly the segments that were checked.
    """
    if not raw:
        return "/"
    if not raw.startswith("/"):
        raise ApiError(400, "bad_path", "the path must begin with '/'")
    out: list[str] = []
    for segment in raw.split("/")[1:]:
        text = unquote(segment, errors="strict") if "%" in segment else segment
        if text in (".", "..") or any(c in text for c in "/\\") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
            raise ApiError(400, "bad_path", "the path may not hold '.', '..', encoded slashes or control characters")
        if text:
            out.append(quote(text, safe="!$&'()*+,;=:@~"))
    return "/" + "/".join(out) + ("/" if raw.endswith("/") and out else "")


def checked_query(query: str) -> str:
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in query):
        raise ApiError(400, "bad_path", "the query may not contain spaces or control characters")
    return query


def rewrite_location(location: str, origin: str, upstream: str, prefix: str) -> str:
    """A dashboard's redirect, kept under the proxy: resolved against the page it answered,
    then re-rooted at ``prefix``; a redirect to anywhere else lands on the dashboard's root."""
    resolved = urlsplit(urljoin(origin + upstream, location))
    path = resolved.path if f"{resolved.scheme}://{resolved.netloc}" == origin else "/"
    return prefix + (path or "/") + (f"?{resolved.query}" if resolved.query else "")


class Redactor:
    """Replaces the token in a stream, also across chunk boundaries (same length, so a
    Content-Length stays right)."""

    def __init__(self, token: Token | None) -> None:
        self.secret = token.value.encode() if token and len(token.value) >= 4 else b""
        self.mask = b"*" * len(self.secret)
        self.held = b""

    def feed(self, chunk: bytes) -> bytes:
        if not self.secret:
            return chunk
        data = (self.held + chunk).replace(self.secret, self.mask)
        split = max(0, len(data) - (len(self.secret) - 1))  # a token's beginning may end a chunk
        self.held, out = data[split:], data[:split]
        return out

    def close(self) -> bytes:
        out, self.held = self.held, b""
        return out

    def text(self, value: str) -> str:
        return value.replace(self.secret.decode(), self.mask.decode()) if self.secret else value


# The page's leading-slash calls (Ray 2.60: /api/authentication_mode, /api/authenticate,
# /api/grafana_health) would leave the proxy for Jupyter's own /api/: this shim, put first
# in every HTML page, sends any same-origin absolute path back under the proxy. The page is
# sandboxed (opaque origin), where localStorage, sessionStorage and document.cookie throw;
# Ray's app reads them, so they get in-memory stand-ins.
_SHIM = """<script>(function(){
var P=%(prefix)s;
function fix(u){try{if(typeof u!=="string")return u;
if(u.charAt(0)==="/"&&u.charAt(1)!=="/"&&u.indexOf(P)!==0)return P+u;}catch(e){}return u;}
var f=window.fetch;if(f)window.fetch=function(i,o){return f.call(this,typeof i==="string"?fix(i):i,o);};
var x=XMLHttpRequest.prototype.open;XMLHttpRequest.prototype.open=function(m,u){
var a=Array.prototype.slice.call(arguments);a[1]=fix(u);return x.apply(this,a);};
var W=window.WebSocket;if(W){window.WebSocket=function(u,p){if(typeof u==="string"&&u.charAt(0)==="/")
u=(location.protocol==="https:"?"wss://":"ws://")+location.host+fix(u);return p===undefined?new W(u):new W(u,p);};
window.WebSocket.prototype=W.prototype;}
function mem(){var d={};return{getItem:function(k){return k in d?d[k]:null;},setItem:function(k,v){d[k]=String(v);},
removeItem:function(k){delete d[k];},clear:function(){d={};},key:function(i){return Object.keys(d)[i]||null;},
get length(){return Object.keys(d).length;}};}
try{document.cookie;}catch(e){Object.defineProperty(document,"cookie",{get:function(){return "";},
set:function(){},configurable:true});}
["localStorage","sessionStorage"].forEach(function(n){try{window[n].length;}catch(e){
try{Object.defineProperty(window,n,{value:mem(),configurable:true});}catch(e2){}}});
})();</script>"""


def inject_shim(html: bytes, prefix: str) -> bytes:
    script = (_SHIM % {"prefix": json.dumps(prefix)}).encode()
    match = re.search(rb"<head[^>]*>", html, re.IGNORECASE)
    at = match.end() if match else 0
    return html[:at] + script + html[at:]

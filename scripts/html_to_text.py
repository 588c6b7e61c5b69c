"""Plain text of one folder of Sphinx HTML documentation (the Python docs' tutorial/ or library/).

    python3 scripts/html_to_text.py DIR > out.txt

Pages come in the order of DIR/index.html's links (the table of contents), index first; each page contributes
the text of its main body (`div.body`), without navigation, sidebars, scripts or the pilcrow anchors. Block
elements end a line, runs of blank lines collapse to one, and code blocks (`pre`) keep their line breaks and
indentation. Python's standard library only.
"""

import html.parser
import os
import re
import sys

BLOCKS = {
    "p", "div", "section", "h1", "h2", "h3", "h4", "h5", "h6", "li", "dt", "dd", "tr", "table", "ul", "ol",
    "dl", "blockquote", "pre", "br", "figure", "caption",
}
SKIP = {"script", "style"}
MARK = "\x00"  # starts each line of a code block


class Body(html.parser.HTMLParser):
    """Collects the text inside `<div class="body">`, and the links of the page in order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0  # div nesting inside the body; 0 = outside
        self.skip = 0  # inside script/style or a headerlink anchor
        self.anchors = []  # per open <a>: whether it is a headerlink
        self.pre = 0
        self.parts = []
        self.links = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if self.depth == 0:
            if tag == "div" and "body" in classes:
                self.depth = 1
            return
        if tag == "div":
            self.depth += 1
        if tag == "a":
            self.anchors.append("headerlink" in classes)
            self.skip += self.anchors[-1]
        if tag in SKIP:
            self.skip += 1
        if tag == "pre":
            self.pre += 1
            self.parts.append("\n" + MARK)
        elif tag in BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if self.depth == 0:
            return
        if tag == "a" and self.anchors:
            self.skip -= self.anchors.pop()
        if tag in SKIP:
            self.skip = max(0, self.skip - 1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        if tag in BLOCKS:
            self.parts.append("\n")
        if tag == "div":
            self.depth -= 1

    def handle_data(self, data):
        if self.depth == 0 or self.skip:
            return
        if self.pre:
            self.parts.append(data.replace("\n", "\n" + MARK))
        else:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self):
        out, blank = [], True
        for line in "".join(self.parts).split("\n"):
            # Code lines keep their indentation; prose lines lose the spaces that markup left around them.
            line = line[len(MARK):].rstrip() if line.startswith(MARK) else line.strip()
            if not line:
                blank = True
                continue
            if blank and out:
                out.append("")
            out.append(line)
            blank = False
        return "\n".join(out) + "\n"


def page(path):
    with open(path, encoding="utf-8") as f:
        p = Body()
        p.feed(f.read())
        p.close()
    return p


def main():
    folder = sys.argv[1]
    index = page(os.path.join(folder, "index.html"))
    order = ["index.html"]
    for href in index.links:
        name = href.split("#")[0]
        if name and "/" not in name and name.endswith(".html") and name not in order:
            if os.path.exists(os.path.join(folder, name)):
                order.append(name)
    texts = [index.text()] + [page(os.path.join(folder, name)).text() for name in order[1:]]
    sys.stdout.write("\n".join(texts))


if __name__ == "__main__":
    main()

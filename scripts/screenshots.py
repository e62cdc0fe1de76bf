"""Regenerates docs/screenshots/*.png: the console's main screens, taken in headless Debian chromium
(driven by Playwright, as the browser test does) from a throwaway local stack (`make screenshots`).

Usage: python scripts/screenshots.py [--out docs/screenshots] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PASSWORD = "a long passphrase 42"
DOCUMENTS = {
    "handbook.txt": (
        "Every employee accrues twenty-five days of paid vacation per year. Unused days carry over until "
        "the end of March. Remote work is allowed up to three days per week; Tuesdays are office days "
        "for every team."
    ),
    "expenses.md": (
        "# Travel expenses\n\nTrain travel is reimbursed in second class. Flights need the approval of a "
        "director when they cost more than 400 euros. Receipts are submitted within thirty days."
    ),
    "security.txt": (
        "Laptops lock after five minutes without activity. Passwords are at least fourteen characters "
        "long, and a hardware key is required for the VPN."
    ),
}
# Uploaded from the Files panel: a two-page PDF, the same bytes again (a duplicate) and a type the
# platform does not take.
PDF_PAGES = (
    "Travel policy, page one. Book trips through the travel desk at least two weeks ahead.",
    "Travel policy, page two. Hotel nights are reimbursed up to 150 euros in capital cities.",
)
QUESTION = "How many vacation days do employees get, and when can I work from home?"
FOLLOW_UP = "Do unused ones carry over?"
VIEWPORT = {"width": 1280, "height": 860}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument(
        "--chromium", default=os.environ.get("CHROMIUM") or shutil.which("chromium") or "chromium"
    )
    args = parser.parse_args(argv)
    if not (ROOT / "web" / "dist" / "index.html").is_file():
        print("the console is not built: run `make screenshots` (or `make console`)", file=sys.stderr)
        return 1
    from playwright.sync_api import expect, sync_playwright

    from infra.local.stack import LocalStack, StackConfig

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rag-screenshots-") as data:
        stack = LocalStack(StackConfig(data_dir=Path(data), port=0, root=ROOT))
        url = stack.start()
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=args.chromium, headless=True, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
                page.set_default_timeout(30_000)

                page.goto(f"{url}/")
                expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
                page.get_by_role("link", name="Create an organisation").click()
                page.get_by_label("Organisation name").fill("Acme Research")
                page.get_by_label("Your e-mail").fill("ada@acme.example")
                page.get_by_label("Password").fill(PASSWORD)
                shot(page, args.out / "sign-up.png")
                page.get_by_role("button", name="Create organisation").click()

                expect(page.get_by_role("heading", name="Documents", level=1)).to_be_visible()
                for name, content in DOCUMENTS.items():
                    page.get_by_label("Name", exact=True).fill(name)
                    page.get_by_label("Content").fill(content)
                    page.get_by_role("button", name="Add document").click()
                    expect(page.get_by_role("rowheader", name=name)).to_be_visible()
                for status in page.locator("[data-status]").all():
                    expect(status).to_have_attribute("data-status", "ready")
                page.mouse.move(0, 0)
                shot(page, args.out / "documents.png")

                page.locator("summary", has_text="Files").click()
                pdf = travel_pdf()
                page.get_by_label("Files", exact=True).set_input_files(
                    [
                        {"name": "travel-policy.pdf", "mimeType": "application/pdf", "buffer": pdf},
                        {"name": "org-chart.png", "mimeType": "image/png", "buffer": b"\x89PNG\r\n\x1a\n"},
                    ]
                )
                row = page.locator("tr", has=page.get_by_role("rowheader", name="travel-policy.pdf"))
                expect(row.locator("[data-status]")).to_have_attribute("data-status", "ready")
                page.get_by_label("Files", exact=True).set_input_files(
                    [{"name": "travel-policy (1).pdf", "mimeType": "application/pdf", "buffer": pdf}]
                )
                row = page.locator("tr", has=page.get_by_role("rowheader", name="travel-policy (1).pdf"))
                expect(row.locator("[data-status]")).to_have_attribute("data-status", "failed")
                page.mouse.move(0, 0)
                shot(page, args.out / "uploads.png")

                page.get_by_role("link", name="Ask").click()
                question = page.get_by_role("textbox", name="Question")
                question.fill(QUESTION)
                question.press("Enter")
                answer = page.locator("article.answer").last
                expect(answer).to_have_attribute("data-complete", "true")
                # A follow-up in the same conversation (the first question created it).
                question.fill(FOLLOW_UP)
                question.press("Enter")
                expect(page.locator("article.answer")).to_have_count(2)
                answer = page.locator("article.answer").last
                expect(answer).to_have_attribute("data-complete", "true")
                answer.locator("a.citation").first.click()
                page.wait_for_timeout(1500)  # the highlight of the opened source fades
                shot(page, args.out / "ask.png")

                page.get_by_role("link", name="Members").click()
                page.get_by_label("E-mail").fill("grace@acme.example")
                page.get_by_label("Initial password").fill(PASSWORD)
                page.get_by_role("button", name="Add member").click()
                expect(page.locator("table.members tbody tr")).to_have_count(2)
                shot(page, args.out / "members.png")

                page.get_by_role("link", name="API keys").click()
                for name, scope in (("nightly export", "write"), ("reporting bot", "query")):
                    page.get_by_label("Name", exact=True).fill(name)
                    page.get_by_label("Scope").select_option(scope)
                    page.get_by_role("button", name="Create key").click()
                    expect(page.get_by_role("rowheader", name=name)).to_be_visible()
                expect(page.locator(".secret-panel")).to_be_visible()  # the secret, shown once
                shot(page, args.out / "api-keys.png")
                browser.close()
        finally:
            stack.stop()
    return 0


def travel_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    for text in PDF_PAGES:
        pdf.add_page()
        pdf.set_font("helvetica", size=12)
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def shot(page, path: Path) -> None:
    # A window as tall as the page: the question form, sticky at the bottom of the window, is then in
    # its place below the conversation rather than over it (as a full-page capture would put it).
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], height)})
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(VIEWPORT)
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The review console in a real headless Chromium, through WebDriver.

Run by .ci/console.sh against a fresh server: a key without kyc:review
cannot sign in; a reviewer signs in, opens the queue and an identity, sees
its document image load, approves it with a reason, sees the status and
the operations change, and signs out; a form without its CSRF token is
refused. A screenshot of each page is kept (1280 and 390 pixels wide).
"""

import json
import os
import struct
import subprocess
import sys
import zlib

import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["KYC_CONSOLE_BASE_URL"]
ADMIN_KEY = os.environ["KYC_CONSOLE_API_KEY"]
BIN = os.environ["KYC_CONSOLE_BIN"]
DATABASE_URL = os.environ["KYC_CONSOLE_DATABASE_URL"]
SHOTS = os.environ["KYC_CONSOLE_SCREENSHOTS"]

def png(width=2, height=2):
    """A real image the browser decodes: `width` x `height` grey pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


PNG = png()


def fail(message):
    print(f"console check: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def api(method, path, key=ADMIN_KEY, **kwargs):
    response = requests.request(method, BASE + path, headers={"apiKey": key}, timeout=10, **kwargs)
    return response


def cli(*args):
    out = subprocess.run(
        [BIN, *args],
        env={**os.environ, "DATABASE_URL": DATABASE_URL, "KYC_LOG": "warn"},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def upload(filename):
    form = api("POST", "/presign-url", json={"filename": filename})
    check(form.status_code == 200, f"presign-url: {form.status_code} {form.text}")
    data = form.json()["data"]
    fields = list(data["fields"].items())
    posted = requests.post(data["url"], data=fields, files={"file": (filename, PNG, "image/png")}, timeout=10)
    check(posted.status_code in (200, 201, 204), f"upload: {posted.status_code} {posted.text}")
    return data["documentUrl"]


def follow(driver, element):
    """Clicks something that loads a new page, and waits until the new page
    has loaded: the old page's window carries a mark the new one does not.
    (Watching an old element go stale races with Chromium's navigation: it
    may answer with a generic inspector error instead.)"""
    driver.execute_script("window.kycOldPage = true")
    element.click()

    def loaded(driver):
        try:
            return driver.execute_script(
                "return window.kycOldPage === undefined && document.readyState === 'complete'"
            )
        except WebDriverException:
            return False  # between two pages

    WebDriverWait(driver, 10).until(loaded)


def shot(driver, name):
    path = os.path.join(SHOTS, f"{name}.png")
    driver.save_screenshot(path)
    print(f"console check: screenshot {path}")


def main():
    os.makedirs(SHOTS, exist_ok=True)
    app_id = next(a["appId"] for a in cli("apps", "list") if a["name"] == "default")
    reviewer = cli("keys", "create", app_id, "--scopes", "kyc:review")["apiKey"]
    reader = cli("keys", "create", app_id, "--scopes", "identities:read")["apiKey"]

    body = {
        "type": "person",
        "name": "Ana Console",
        "email": "ana.console@example.com",
        "birthday": "1990-05-17",
        "gender": "Female",
        "address": {"street": "Rua 1", "city": "Porto", "state": "Porto", "postalCode": "4000-001", "country": "PT"},
        "phone": {"number": "910000000", "sms": False},
        "tax": {"country": "PT", "idNumber": "123456789", "state": "Porto"},
        "documents": [{"type": "Passport", "side": "FrontSide", "url": upload("passport.png")}],
        "faceImages": [upload("face.png")],
    }
    created = api("POST", "/identities", json=body)
    check(created.status_code == 200, f"create: {created.status_code} {created.text}")
    identity = created.json()["data"]
    identity_id = identity["id"]

    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("KYC_CHROMIUM", "/usr/bin/chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    service = Service(executable_path=os.environ.get("KYC_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(5)
    try:
        # A key without kyc:review cannot sign in.
        driver.get(BASE + "/console/login")
        shot(driver, "01-sign-in")
        driver.find_element(By.ID, "api-key").send_keys(reader)
        follow(driver, driver.find_element(By.ID, "sign-in"))
        problem = driver.find_element(By.CSS_SELECTOR, ".problem").text
        check("does not have the kyc:review scope" in problem, f"a reader's key was not refused: {problem}")
        check(driver.get_cookie("kyc_console") is None, "a reader's key got a session")
        shot(driver, "02-sign-in-refused")

        # The reviewer signs in and lands on the queue.
        driver.find_element(By.ID, "api-key").send_keys(reviewer)
        follow(driver, driver.find_element(By.ID, "sign-in"))
        check(driver.current_url.endswith("/console/queue"), f"not on the queue: {driver.current_url}")
        check("Ana Console" in driver.page_source, "the identity is not in the queue")
        session = driver.get_cookie("kyc_console")
        check(session is not None and session.get("httpOnly"), f"session cookie: {session}")
        shot(driver, "03-queue")

        # The identity page, its images loaded through short-lived URLs.
        follow(driver, driver.find_element(By.LINK_TEXT, "Ana Console"))
        check(identity_id in driver.current_url, f"not on the identity: {driver.current_url}")
        images = driver.find_elements(By.CSS_SELECTOR, "img.document")
        check(len(images) == 2, f"{len(images)} document images")
        for image in images:
            WebDriverWait(driver, 10).until(lambda d: d.execute_script("return arguments[0].complete", image))
            width = driver.execute_script("return arguments[0].naturalWidth", image)
            check(width == 2, f"an image did not load: {image.get_attribute('src')}")
        shot(driver, "04-identity")
        driver.set_window_size(390, 900)
        width = driver.execute_script("return document.documentElement.scrollWidth")
        check(width <= 400, f"the page is {width} px wide at 390")
        shot(driver, "05-identity-390px")
        driver.set_window_size(1280, 900)

        # A form without its CSRF token is refused (the session cookie alone
        # is not enough).
        forged = requests.post(
            f"{BASE}/console/identities/{identity_id}/block",
            data={"reason": "forged"},
            cookies={"kyc_console": session["value"]},
            allow_redirects=False,
            timeout=10,
        )
        check(forged.status_code == 403, f"a form without its token: {forged.status_code}")
        check(api("GET", f"/identities/{identity_id}").json()["data"]["blocked"] is False, "forged block applied")

        # Approve with a reason: status and operations change.
        operations_before = driver.find_element(By.ID, "operations").text
        form = driver.find_element(By.CSS_SELECTOR, "form.decision")
        form.find_element(By.CSS_SELECTOR, "input[name=status][value=approved]").click()
        form.find_element(By.CSS_SELECTOR, "input[name=reason]").send_keys("documents checked in the browser")
        follow(driver, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        status = driver.find_element(By.CSS_SELECTOR, ".verification .status").text
        check(status == "approved", f"status shown: {status}")
        operations_after = driver.find_element(By.ID, "operations").text
        check(operations_after != operations_before, "the operations did not change")
        check("deposit:wire yes" in operations_after.replace("\n", " "), f"operations: {operations_after}")
        shot(driver, "06-approved")
        verification = api("GET", f"/verifications/{identity['kycStatus'][0]['verificationId']}").json()["data"]
        check(verification["status"] == "approved", f"API says {verification['status']}")
        check(verification["reason"] == "documents checked in the browser", "reason not kept")

        # Sign out: back to the sign-in page, the old token refused.
        follow(driver, driver.find_element(By.ID, "sign-out"))
        check(driver.current_url.endswith("/console/login"), f"after sign-out: {driver.current_url}")
        shot(driver, "07-signed-out")
        replay = requests.get(
            BASE + "/console/queue",
            cookies={"kyc_console": session["value"]},
            allow_redirects=False,
            timeout=10,
        )
        check(replay.status_code == 303, f"a signed-out token: {replay.status_code}")
    finally:
        driver.quit()
    print("console check: passed")


if __name__ == "__main__":
    main()

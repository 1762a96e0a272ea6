"""`zos`: argument parsing and one small function per command.

Exit codes: 0 success (a followed deployment succeeded), 1 failed (deployment failed, request
refused, invalid script), 2 usage or configuration error, 3 the deployment was cancelled, 4 the
follow timeout passed while the deployment was still going, 5 the control plane stayed
unreachable for --wait seconds while following (the deployment goes on), 130 interrupted.
"""

import argparse
import difflib
import getpass
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

from client import __version__
from client.api import Api, ApiError
from client.config import DEFAULT_URL, Config, load_config, write_config_value
from client.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError
from contracts.image_manifest import sign_manifest
from signing.keys import key_id, public_key_hex
from zoscli import envelope, images, keys, output
from zoscli.follow import DEFAULT_OUTAGE_WAIT, EXIT_BY_STATE, Display, Reconnector, follow

NODE_STATUSES = ("pending", "online", "degraded", "offline", "decommissioned")

EPILOG = """\
configuration (highest precedence first):
  flags --url/--config/--key, then ZOS_URL, ZOS_TOKEN, ZOS_KEY, ZOS_CONFIG,
  then ~/.config/zos/config.toml (keys: url, token, key), then the defaults
  (url http://127.0.0.1:8000, key "default").

getting started:
  zos login                      # store an API token for your account
  zos keygen                     # make a signing key (~/.config/zos/keys/default)
  zos key register               # upload its public key to the ledger
  zos nodes --status online      # where can I deploy?
  zos deploy examples/hello.rhai --node 1

exit codes: 0 ok/succeeded, 1 failed or refused, 2 usage/config error,
  3 deployment cancelled, 4 follow timeout (the deployment keeps going),
  5 control plane unreachable for --wait seconds while following (it keeps going),
  130 interrupted.
See docs/cli.md for the whole guide."""


@dataclass
class Context:
    """What every command needs, injected so tests can run `main` in-process."""

    args: argparse.Namespace
    env: Mapping[str, str]
    out: TextIO
    err: TextIO
    stdin: TextIO
    # The deployment being followed, so an interrupt can say how to get back to it.
    deployment_id: int | None = None

    def config(self, *, create: bool = False) -> Config:
        return load_config(
            self.env,
            url=self.args.url,
            key=getattr(self.args, "key", None),
            config_file=self.args.config,
            create=create,
        )

    def api(self, *, auth: bool = True) -> Api:
        config = self.config()
        return Api(config.url, config.require_token() if auth else config.token)

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be 1 or more")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _size(text: str) -> int:
    try:
        return envelope.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- keys -----------------------------------------------------------------------------------


def cmd_keygen(ctx: Context) -> int:
    config = ctx.config()
    name = config.key if ctx.args.name is None else ctx.args.name
    files, key = keys.generate_key(config.keys_dir, name, force=ctx.args.force)
    ctx.print(f"wrote private key {files.private} (mode 0600, keep it secret)")
    ctx.print(f"wrote public key  {files.public}")
    ctx.print(f"public key {keys.describe(key)}")
    register = "zos key register" + (f" --name {name}" if name != config.key else "")
    ctx.print(f"next: `{register}` uploads the public key so deployments signed with it count")
    return EXIT_OK


def cmd_key_register(ctx: Context) -> int:
    config = ctx.config()
    name = config.key if ctx.args.name is None else ctx.args.name
    files, signing_key = keys.load_signing_key(config.keys_dir, name)
    public_key = public_key_hex(signing_key)
    registered = ctx.api().add_key(keys.check_name(files.name), signing_key)
    ctx.print(
        f"registered key {registered['name']!r} (id {registered['id']}, key id "
        f"{key_id(bytes.fromhex(public_key))})"
    )
    return EXIT_OK


def cmd_key_list(ctx: Context) -> int:
    config = ctx.config()
    registered = ctx.api().keys()
    if ctx.args.json:
        ctx.print(output.pretty_json(registered))
        return EXIT_OK
    if not registered:
        ctx.print("no keys registered: run `zos keygen` then `zos key register`")
        return EXIT_OK
    local = keys.local_public_keys(config.keys_dir)
    rows = [
        [
            k["id"],
            k["name"],
            key_id(bytes.fromhex(k["public_key"])),
            "revoked" if k.get("revoked") else "active",
            local.get(k["public_key"].lower(), "-"),
            output.local_time(k.get("created")),
        ]
        for k in registered
    ]
    ctx.print(output.table(["ID", "NAME", "KEY ID", "STATE", "LOCAL FILE", "CREATED"], rows))
    return EXIT_OK


def cmd_key_revoke(ctx: Context) -> int:
    revoked = ctx.api().revoke_key(ctx.args.id)
    ctx.print(
        f"revoked key {revoked['name']!r} (id {revoked['id']}); deployments signed with it are "
        "no longer accepted"
    )
    return EXIT_OK


def cmd_login(ctx: Context) -> int:
    config = ctx.config(create=True)
    username = ctx.args.username or input_line(ctx, "username: ")
    if ctx.args.password_stdin:
        password = ctx.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {username}: ")
    if not username or not password:
        raise CliError("username and password are needed", hint="zos login --username NAME")
    token = Api(config.url).obtain_token(username, password)
    write_config_value(config.path, "token", token)
    if config.sources.get("url") == "flag":
        write_config_value(config.path, "url", config.url)
    ctx.print(f"logged in as {username}; token saved in {config.path} (mode 0600)")
    if config.sources.get("token", "").startswith("env"):
        ctx.print("note: ZOS_TOKEN is set in your environment and takes precedence over the file")
    return EXIT_OK


def input_line(ctx: Context, prompt: str) -> str:
    ctx.err.write(prompt)
    ctx.err.flush()
    return ctx.stdin.readline().strip()


# --- deployments ----------------------------------------------------------------------------


def _script_error(path: str, script: str, exc: ApiError) -> ApiError:
    """Point at the offending line of the local file, compiler style."""
    line, column = exc.details.get("line"), exc.details.get("column")
    if exc.code != "script_parse" or not isinstance(line, int):
        return exc
    lines = script.splitlines()
    snippet = ""
    if 1 <= line <= len(lines):
        caret = " " * (max(1, column or 1) - 1) + "^"
        snippet = f"\n  {lines[line - 1]}\n  {caret}"
    kind = f" ({exc.details['kind']})" if exc.details.get("kind") else ""
    # The engine's message may repeat the position; the file:line:column prefix already says it.
    text = re.sub(rf"^line {line}, column {column}: ", "", exc.text)
    exc.message = f"{path}:{line}:{column}: syntax error{kind}: {text}{snippet}"
    return exc


def _resources(args: argparse.Namespace) -> dict[str, int]:
    return {k: getattr(args, k) for k in envelope.RESOURCE_KEYS if getattr(args, k) is not None}


def cmd_deploy(ctx: Context) -> int:
    args = ctx.args
    config = ctx.config()
    script = envelope.read_script(args.script)
    token = config.require_token()
    _, signing_key = keys.load_signing_key(config.keys_dir, config.key)
    target = {"node": args.node} if args.node is not None else {"farm": args.farm}
    payload = envelope.build_payload(
        script=script,
        target=target,
        name=args.name or envelope.name_from_path(args.script),
        resources=_resources(args),
        timeout=args.run_timeout,
        lifetime=args.expires,
    )
    signed = envelope.sign_deployment(signing_key, payload)
    api = Api(config.url, token)
    try:
        deployment = api.submit(signed)
    except ApiError as exc:
        raise _script_error(args.script, script, exc) from None
    ctx.deployment_id = deployment["id"]
    job = deployment.get("job") or {}
    ctx.print(
        f"deployment {deployment['id']} {deployment['name']!r} accepted: "
        f"{deployment['status']} on node {job.get('node', '?')} "
        f"(job {str(job.get('id', '?'))[:12]}, signed with key {config.key})"
    )
    if args.no_follow:
        ctx.print(f"follow it with `zos logs {deployment['id']} --follow`")
        return EXIT_OK
    return _follow_to_end(ctx, api, deployment, timeout=args.timeout)


def _follow_to_end(ctx: Context, api: Api, deployment: dict, *, timeout: float | None) -> int:
    display = Display(ctx.out, origin=deployment.get("created"), err=ctx.err)
    wait = ctx.args.wait
    state = follow(
        api, deployment["id"], display, timeout=timeout, live=not ctx.args.no_live, wait=wait
    )
    final = Reconnector(display, deployment["id"], wait=wait).call(
        lambda: api.deployment(deployment["id"])
    )
    _print_outcome(ctx, final, state)
    return EXIT_BY_STATE.get(state, EXIT_FAILED)


def _print_outcome(ctx: Context, deployment: dict, state: str) -> None:
    job = deployment.get("job") or {}
    ctx.print(f"deployment {deployment['id']} {state}")
    if job.get("result") is not None:
        ctx.print("result:")
        ctx.print(output.pretty_json(job["result"]))
    if job.get("error"):
        ctx.print(f"error: {job['error']}")


def cmd_status(ctx: Context) -> int:
    api = ctx.api()
    if ctx.args.deployment is not None:
        deployment = api.deployment(ctx.args.deployment)
        if ctx.args.json:
            ctx.print(output.pretty_json(deployment))
            return EXIT_OK
        _print_detail(ctx, deployment)
        return EXIT_OK
    deployments = api.deployments()
    if ctx.args.json:
        ctx.print(output.pretty_json(deployments))
        return EXIT_OK
    if not deployments:
        ctx.print("no deployments yet: `zos deploy SCRIPT.rhai --node ID` starts one")
        return EXIT_OK
    rows = [
        [
            d["id"],
            d["name"],
            d["status"],
            output.target(d.get("target")),
            (d.get("job") or {}).get("node"),
            (d.get("job") or {}).get("attempt"),
            output.ago(d.get("created")),
        ]
        for d in deployments
    ]
    headers = ["ID", "NAME", "STATUS", "TARGET", "NODE", "ATTEMPT", "CREATED"]
    ctx.print(output.table(headers, rows))
    return EXIT_OK


def _print_detail(ctx: Context, d: dict) -> None:
    job = d.get("job") or {}
    fields = [
        ("deployment", f"{d['id']} {d['name']!r}"),
        ("status", _status(d)),
        ("target", output.target(d.get("target"))),
        ("resources", output.target(d.get("resources")) or "-"),
        ("node", job.get("node", "-")),
        ("job", job.get("id", "-")),
        ("attempt", f"{job.get('attempt', '-')} of {job.get('max_attempts', '-')}"),
        ("created", output.local_time(d.get("created"))),
        ("updated", output.local_time(d.get("updated"))),
        ("finished", output.local_time(job.get("finished_at"))),
        ("expires", output.local_time(d.get("expires_at"))),
        ("script sha256", d.get("script_sha256", "-")),
    ]
    width = max(len(k) for k, _ in fields)
    for name, value in fields:
        ctx.print(f"{name:<{width}}  {value}")
    if job.get("error"):
        ctx.print(f"{'error':<{width}}  {job['error']}")
    if job.get("result") is not None:
        ctx.print("result:")
        ctx.print(output.pretty_json(job["result"]))


def cmd_logs(ctx: Context) -> int:
    api = ctx.api()
    ctx.deployment_id = ctx.args.deployment
    deployment = api.deployment(ctx.args.deployment)
    if ctx.args.follow:
        return _follow_to_end(ctx, api, deployment, timeout=ctx.args.timeout)
    display = Display(ctx.out, origin=deployment.get("created"), err=ctx.err)
    after = 0
    while True:
        page = api.events(deployment["id"], after=after)
        for event in page.get("results", []):
            display.event(event)
        if not page.get("results") or int(page.get("next", after)) == after:
            break
        after = int(page["next"])
    display.close()
    if deployment["status"] not in EXIT_BY_STATE:
        ctx.print(f"(still {deployment['status']}; `zos logs {deployment['id']} --follow` waits)")
    return EXIT_OK


def cmd_cancel(ctx: Context) -> int:
    deployment = ctx.api().cancel(ctx.args.deployment)
    ctx.print(f"deployment {deployment['id']} {deployment['name']!r} is {_status(deployment)}")
    return EXIT_OK


def _status(deployment: dict) -> str:
    """The status and what it alone does not say (a cancel not yet confirmed by the node, a job
    waiting for its node to reconnect)."""
    detail = deployment.get("detail")
    return f"{deployment['status']} ({detail})" if detail else deployment["status"]


def cmd_validate(ctx: Context) -> int:
    script = envelope.read_script(ctx.args.script)
    try:
        answer = ctx.api().validate(script)
    except ApiError as exc:
        raise _script_error(ctx.args.script, script, exc) from None
    functions = answer.get("functions") or []
    ctx.print(f"{ctx.args.script}: ok; calls {', '.join(functions) or 'no catalog functions'}")
    return EXIT_OK


def cmd_nodes(ctx: Context) -> int:
    # Nodes are public: a token is sent when there is one, but none is needed.
    nodes = ctx.api(auth=False).nodes(farm=ctx.args.farm, status=ctx.args.status)
    if ctx.args.json:
        ctx.print(output.pretty_json(nodes))
        return EXIT_OK
    if not nodes:
        ctx.print("no nodes match")
        return EXIT_OK
    rows = []
    for n in nodes:
        cap, used = n.get("capacity") or {}, n.get("used") or {}

        def free(k: str, cap: dict = cap, used: dict = used) -> int:
            return max(0, int(cap.get(k, 0)) - int(used.get(k, 0)))

        rows.append(
            [
                n["id"],
                n["farm"],
                n["status"],
                f"{free('cru')}/{cap.get('cru', 0)}",
                output.size(free("mru")),
                output.size(free("sru")),
                output.size(free("hru")),
                output.ago(n.get("last_seen")),
            ]
        )
    headers = ["ID", "FARM", "STATUS", "CPU FREE", "MEM FREE", "SSD FREE", "HDD FREE", "SEEN"]
    ctx.print(output.table(headers, rows))
    return EXIT_OK


def cmd_catalog(ctx: Context) -> int:
    # Public, like nodes: what the control plane's nodes run, so it may be newer than this CLI.
    functions = ctx.api(auth=False).catalog()["functions"]
    name = ctx.args.name
    if name is not None:
        by_name = {f["name"]: f for f in functions}
        if name not in by_name:
            close = difflib.get_close_matches(name, list(by_name), n=3)
            raise CliError(
                f"no catalog function {name!r}",
                hint=(f"did you mean {', '.join(close)}? " if close else "")
                + "`zos catalog` lists them all",
                exit_code=EXIT_FAILED,
            )
        functions = [by_name[name]]
    if ctx.args.json:
        ctx.print(output.pretty_json(functions[0] if name else {"functions": functions}))
    elif name:
        _print_function(ctx, functions[0])
    else:
        rows = [[f["signature"], f["doc"]] for f in functions]
        ctx.print(output.table(["FUNCTION", "DOES"], rows))
        ctx.print("\n`zos catalog NAME` shows a function's parameters, fields, result and example")
    return EXIT_OK


def _print_function(ctx: Context, function: dict) -> None:
    """One function as a script author needs it: signature, arguments, result, example."""
    ctx.print(f"{function['signature']}  ->  {function['returns']}")
    ctx.print(f"  {function['doc']}")
    for param in function["params"]:
        limits = _limits(param)
        ctx.print(
            f"\n{param['name']} ({param['type']}{', ' + limits if limits else ''}): {param['doc']}"
        )
        if param["fields"]:
            rows = [
                [
                    f["name"],
                    f["type"],
                    "yes" if f["required"] else "no",
                    "" if f["default"] is None else json.dumps(f["default"]),
                    _limits(f),
                    f["doc"],
                ]
                for f in param["fields"]
            ]
            headers = ["FIELD", "TYPE", "REQUIRED", "DEFAULT", "RANGE", "MEANING"]
            ctx.print(output.table(headers, rows))
    ctx.print("\nexample:")
    ctx.print("\n".join(f"  {line}" for line in function["example"].splitlines()))


def _limits(arg: dict) -> str:
    if arg.get("minimum") is not None and arg.get("maximum") is not None:
        return f"{arg['minimum']}-{arg['maximum']}"
    if arg.get("max_items") is not None:
        return f"at most {arg['max_items']}"
    return " | ".join(arg.get("choices") or [])


# --- images ---------------------------------------------------------------------------------

UPLOAD_TIMEOUT = 300.0  # per socket operation: the hub hashes and syncs a part before it answers


def cmd_image_push(ctx: Context) -> int:
    args = ctx.args
    config = ctx.config()
    token = config.require_token()
    _, signing_key = keys.load_signing_key(config.keys_dir, config.key)
    ctx.err.write(f"hashing {args.directory} ...\n")
    local = images.read_image_dir(args.directory, name=args.name, version=args.version)
    manifest = local.manifest
    api = Api(config.url, token, timeout=UPLOAD_TIMEOUT)
    sent, sent_bytes = images.upload_missing(api, local, ctx.err)
    image = api.publish_image(sign_manifest(signing_key, manifest), public=args.public)
    ctx.print(
        f"published {image['name']}:{image['version']} ({image['kind']}, "
        f"{'public' if image['public'] else 'private'}, {output.size(image['size'])}; "
        f"uploaded {sent} of {len(manifest.parts)} parts, {output.size(sent_bytes)}; "
        f"signed with key {config.key})"
    )
    ctx.print(f'use it in a script: vm_create(#{{name: "...", image: "{image["name"]}", ...}})')
    return EXIT_OK


def cmd_image_list(ctx: Context) -> int:
    found = ctx.api().images()
    if ctx.args.json:
        ctx.print(output.pretty_json(found))
        return EXIT_OK
    if not found:
        ctx.print("no images yet: `zos image push DIR --name NAME --version V` publishes one")
        return EXIT_OK
    rows = [
        [
            i["name"],
            i["version"],
            i["kind"],
            "public" if i["public"] else "private",
            i["owner"],
            output.size(i["size"]),
            output.ago(i.get("created")),
        ]
        for i in found
    ]
    ctx.print(
        output.table(["NAME", "VERSION", "KIND", "VISIBILITY", "OWNER", "SIZE", "CREATED"], rows)
    )
    return EXIT_OK


def cmd_image_show(ctx: Context) -> int:
    found = ctx.api().images(name=ctx.args.name)
    if not found:
        raise CliError(
            f"no image {ctx.args.name!r} that you may use",
            hint="`zos image list` shows your images and the public ones",
            exit_code=EXIT_FAILED,
        )
    if ctx.args.json:
        ctx.print(output.pretty_json(found))
        return EXIT_OK
    for n, image in enumerate(found):
        if n:
            ctx.print()
        manifest = image["manifest"]
        fields = [
            ("image", f"{image['name']}:{image['version']} (id {image['id']})"),
            ("kind", image["kind"]),
            ("visibility", "public" if image["public"] else "private"),
            ("owner", image["owner"]),
            ("signed by", f"key {image['signer']}"),
            ("size", output.size(image["size"])),
            ("created", output.local_time(image.get("created"))),
        ]
        fields += [
            (k, json.dumps(manifest[k]))
            for k in ("cmdline", "min_disk_gb", "entrypoint", "env", "workdir")
            if k in manifest
        ]
        width = max(len(k) for k, _ in fields)
        for name, value in fields:
            ctx.print(f"{name:<{width}}  {value}")
        for part in image["parts"]:
            size = output.size(part["size"])
            ctx.print(f"{'part':<{width}}  {part['role']:<7} {part['sha256']}  {size}")
    return EXIT_OK


def cmd_image_delete(ctx: Context) -> int:
    api = ctx.api()
    found = [i for i in api.images(name=ctx.args.name) if i["version"] == ctx.args.version]
    if not found:
        raise CliError(
            f"you have no image {ctx.args.name}:{ctx.args.version}",
            hint=f"`zos image show {ctx.args.name}` lists its versions",
            exit_code=EXIT_FAILED,
        )
    api.delete_image(found[0]["id"])
    ctx.print(
        f"deleted {ctx.args.name}:{ctx.args.version}; nodes that cached it keep their copy "
        "until they evict it"
    )
    return EXIT_OK


# --- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zos",
        description="ZOS user command line: manage signing keys, deploy signed Rhai scripts to "
        "nodes and follow them live, list nodes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"zos {__version__}")
    parser.add_argument(
        "--url", help=f"control plane URL (env ZOS_URL; default {DEFAULT_URL})", metavar="URL"
    )
    parser.add_argument(
        "--config",
        help="config file (env ZOS_CONFIG; default ~/.config/zos/config.toml)",
        metavar="FILE",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[Context], int], help_text: str, **kw):
        sub = commands.add_parser(name, help=help_text, description=help_text, **kw)
        sub.set_defaults(func=func)
        return sub

    login = add(
        "login",
        cmd_login,
        "get an API token for your account (username + password) and save it in the config file",
    )
    login.add_argument("--username", "-u", help="account name (asked for when not given)")
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of standard input (for scripts)",
    )

    keygen = add(
        "keygen",
        cmd_keygen,
        "generate an ed25519 signing key pair under ~/.config/zos/keys/ (private file 0600)",
    )
    keygen.add_argument("--name", help="key name (default: the configured key, 'default')")
    keygen.add_argument("--force", action="store_true", help="replace an existing key of that name")

    key = commands.add_parser(
        "key",
        help="manage the public keys registered for your account",
        description="manage the public keys registered for your account",
    )
    key_commands = key.add_subparsers(dest="key_command", metavar="SUBCOMMAND", required=True)
    register = key_commands.add_parser(
        "register",
        help="upload a local public key to the ledger",
        description="upload a local public key (NAME.pub) to the ledger under the same name",
    )
    register.add_argument("--name", help="local key name (default: the configured key)")
    register.set_defaults(func=cmd_key_register)
    key_list = key_commands.add_parser(
        "list",
        help="list your registered keys",
        description="list your registered keys, marking which ones this machine holds",
    )
    key_list.add_argument("--json", action="store_true", help="print the raw JSON")
    key_list.set_defaults(func=cmd_key_list)
    revoke = key_commands.add_parser(
        "revoke",
        help="revoke a registered key (by the id `zos key list` shows)",
        description="revoke a registered key: nodes and the coordinator stop accepting it",
    )
    revoke.add_argument("id", type=_positive_int, metavar="ID", help="key id from `zos key list`")
    revoke.set_defaults(func=cmd_key_revoke)

    deploy = add(
        "deploy",
        cmd_deploy,
        "sign a Rhai script, submit it to a node or farm, and follow it until it ends",
        epilog="exit codes: 0 succeeded, 1 failed or refused, 2 usage/config error, "
        "3 cancelled, 4 --timeout passed while following, 5 the control plane did not answer "
        "for --wait seconds while following (either way the deployment keeps going)",
    )
    deploy.add_argument("script", metavar="SCRIPT.rhai", help="the script to deploy (UTF-8)")
    where = deploy.add_mutually_exclusive_group(required=True)
    where.add_argument("--node", type=_positive_int, metavar="ID", help="run on this node")
    where.add_argument(
        "--farm", type=_positive_int, metavar="ID", help="run on an online node of this farm"
    )
    deploy.add_argument("--name", help="deployment name, [a-z0-9-] (default: from the file name)")
    deploy.add_argument("--key", metavar="NAME|PATH", help="signing key (env ZOS_KEY)")
    deploy.add_argument("--cru", type=_non_negative_int, metavar="N", help="CPU cores needed free")
    deploy.add_argument("--mru", type=_size, metavar="SIZE", help="memory needed free, e.g. 2G")
    deploy.add_argument("--sru", type=_size, metavar="SIZE", help="SSD space needed free, e.g. 20G")
    deploy.add_argument("--hru", type=_size, metavar="SIZE", help="HDD space needed free")
    deploy.add_argument(
        "--expires",
        type=_positive_int,
        default=envelope.DEFAULT_LIFETIME,
        metavar="S",
        help="seconds the signed envelope stays valid, incl. retries (default 3600, max 7 days)",
    )
    deploy.add_argument(
        "--run-timeout",
        type=_positive_int,
        metavar="S",
        help="seconds the script may run on the node",
    )
    deploy.add_argument(
        "--no-follow", action="store_true", help="submit and return at once with the deployment id"
    )
    _follow_flags(deploy)

    status = add("status", cmd_status, "list your deployments, or show one in detail")
    status.add_argument("deployment", nargs="?", type=_positive_int, metavar="DEPLOYMENT")
    status.add_argument("--json", action="store_true", help="print the raw JSON")

    logs = add("logs", cmd_logs, "show a deployment's events and log lines")
    logs.add_argument("deployment", type=_positive_int, metavar="DEPLOYMENT")
    logs.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep following until the deployment ends (exit code as for deploy)",
    )
    _follow_flags(logs)

    cancel = add("cancel", cmd_cancel, "cancel a deployment that has not ended")
    cancel.add_argument("deployment", type=_positive_int, metavar="DEPLOYMENT")

    nodes = add("nodes", cmd_nodes, "list nodes with their free capacity")
    nodes.add_argument("--farm", type=_positive_int, metavar="ID", help="only this farm's nodes")
    nodes.add_argument(
        "--status",
        choices=NODE_STATUSES,
        action="append",
        help="only nodes in this state (repeatable)",
    )
    nodes.add_argument("--json", action="store_true", help="print the raw JSON")

    validate = add(
        "validate",
        cmd_validate,
        "check that a script compiles and calls only catalog functions, without deploying it",
    )
    validate.add_argument("script", metavar="SCRIPT.rhai")

    catalog = add(
        "catalog",
        cmd_catalog,
        "list the functions a script may call, or show one: parameters, spec fields with "
        "defaults and ranges, result, example",
    )
    catalog.add_argument("name", nargs="?", metavar="NAME", help="one function, e.g. vm_create")
    catalog.add_argument("--json", action="store_true", help="print the raw JSON")
    _image_commands(commands)
    return parser


def _image_commands(commands) -> None:
    image = commands.add_parser(
        "image",
        help="publish workload images to the hub, list and show them",
        description="publish workload images (VM or container) to the control plane's hub; "
        "nodes fetch them on first use (docs/images.md)",
    )
    sub = image.add_subparsers(dest="image_command", metavar="SUBCOMMAND", required=True)
    push = sub.add_parser(
        "push",
        help="publish an image directory as NAME:VERSION (uploads only missing parts)",
        description="hash the parts of an image directory (kernel, initrd, disk.raw, "
        "rootfs.tar, image.json), upload the ones the hub lacks with a progress bar, then "
        "sign the manifest with your key and publish it",
    )
    push.add_argument("directory", metavar="DIR", help="the image directory")
    push.add_argument("--name", required=True, help="image name scripts use, [a-z0-9_-]")
    push.add_argument("--version", required=True, help="version, never reused (e.g. 1.0)")
    push.add_argument(
        "--public", action="store_true", help="staff only: every user may use the image"
    )
    push.add_argument("--key", metavar="NAME|PATH", help="signing key (env ZOS_KEY)")
    push.set_defaults(func=cmd_image_push)
    listing = sub.add_parser("list", help="your images and the public ones")
    listing.add_argument("--json", action="store_true", help="print the raw JSON")
    listing.set_defaults(func=cmd_image_list)
    show = sub.add_parser("show", help="every version of one image: parts, signer, settings")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="print the raw JSON")
    show.set_defaults(func=cmd_image_show)
    delete = sub.add_parser("delete", help="delete one version of your image")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("version", metavar="VERSION")
    delete.set_defaults(func=cmd_image_delete)


def _follow_flags(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--timeout",
        type=_seconds,
        metavar="S",
        help="stop following after S seconds (exit 4); the deployment keeps going",
    )
    sub.add_argument(
        "--wait",
        type=_seconds,
        default=DEFAULT_OUTAGE_WAIT,
        metavar="S",
        help="while following, keep reconnecting for S seconds when the control plane does not "
        f"answer, then give up (exit 5); default {DEFAULT_OUTAGE_WAIT:g}",
    )
    sub.add_argument(
        "--no-live",
        action="store_true",
        help="poll the events endpoint only, without the WebSocket feed",
    )


def main(
    argv: list[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    stdin: TextIO | None = None,
) -> int:
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and the reason
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    ctx = Context(args, os.environ if env is None else env, out, err, stdin or sys.stdin)
    try:
        return args.func(ctx)
    except CliError as exc:
        out.flush()
        err.write(exc.render() + "\n")
        return exc.exit_code
    except KeyboardInterrupt:
        err.write("\ninterrupted")
        if ctx.deployment_id is not None:
            n = ctx.deployment_id
            err.write(
                f"; deployment {n} keeps going: `zos logs {n} --follow` to watch it again, "
                f"`zos cancel {n}` to stop it"
            )
        err.write("\n")
        return EXIT_INTERRUPTED

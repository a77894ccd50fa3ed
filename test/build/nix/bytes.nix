# Values that only survive when bwrap gets its options as raw bytes (--args FD).
{ salt ? "", lib ? /tmp/nix-reference/nix/lib.nix }:
let l = import lib { inherit salt; }; in
{
  bytes = l.mk {
    name = "sandbox-bytes";
    weird = "latin1 éÿş and utf8 Ã© and tab\t";
    script = ''printf "%s" "$weird" > $out'';
  };
  structured = l.mk {
    name = "sandbox-structured";
    __structuredAttrs = true;
    script = "echo hi > $out";
  };
}

/*
 * Active content in documents. The office and PDF scanners parse these formats properly;
 * these rules are a second, independent look at the raw bytes.
 */

rule Office_AutoExec_Macro_Name
{
    meta:
        verdict = "suspicious"
        description = "OLE document naming a macro that Office runs automatically"
    strings:
        $a1 = "AutoOpen" nocase ascii wide
        $a2 = "Auto_Open" nocase ascii wide
        $a3 = "Document_Open" nocase ascii wide
        $a4 = "Workbook_Open" nocase ascii wide
        $a5 = "AutoExec" nocase ascii wide
        $a6 = "Document_Close" nocase ascii wide
        $a7 = "AutoClose" nocase ascii wide
        $vba = "Attribute VB_Name" ascii
    condition:
        uint32(0) == 0xE011CFD0 and $vba and any of ($a*)
}

rule PDF_JavaScript
{
    meta:
        verdict = "suspicious"
        description = "PDF with a JavaScript action (names may be #-escaped)"
    strings:
        // /JavaScript or /JS with any letter written as #xx
        $js_long = /\/(J|#4[aA])(a|#61)(v|#76)(a|#61)(S|#53)(c|#63)(r|#72)(i|#69)(p|#70)(t|#74)/
        $js_short = /\/(J|#4[aA])(S|#53)[\s\/<(\[]/
    condition:
        uint32(0) == 0x46445025 and any of them
}

rule PDF_Escaped_Action_Name
{
    meta:
        verdict = "malicious"
        description = "PDF hiding an action name behind #-escapes (an evasion, never written by honest PDF producers)"
    strings:
        $esc = /\/(J|#4[aA])(a|#61)(v|#76)(a|#61)(S|#53)(c|#63)(r|#72)(i|#69)(p|#70)(t|#74)/
        $plain = "/JavaScript"
    condition:
        uint32(0) == 0x46445025 and #esc > #plain
}

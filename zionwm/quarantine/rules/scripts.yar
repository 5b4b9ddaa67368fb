/*
 * Script droppers: code whose job is to fetch more code from the network and run it.
 */

rule PowerShell_Download_Cradle
{
    meta:
        verdict = "suspicious"
        description = "PowerShell that downloads and runs code (download cradle)"
    strings:
        $iex1 = "IEX" nocase ascii wide
        $iex2 = "Invoke-Expression" nocase ascii wide
        $dl1 = "DownloadString" nocase ascii wide
        $dl2 = "DownloadFile" nocase ascii wide
        $dl3 = "DownloadData" nocase ascii wide
        $dl4 = "Invoke-WebRequest" nocase ascii wide
        $dl5 = "Net.WebClient" nocase ascii wide
        $dl6 = "Start-BitsTransfer" nocase ascii wide
    condition:
        any of ($iex*) and any of ($dl*)
}

rule PowerShell_Encoded_Command
{
    meta:
        verdict = "suspicious"
        description = "PowerShell started with a hidden, base64-encoded command"
    strings:
        $ps = "powershell" nocase ascii wide
        $enc = /\s-e(nc|ncodedcommand)?\s+[A-Za-z0-9+\/]{40,}/ nocase ascii wide
    condition:
        $ps and $enc
}

rule Shell_Pipe_To_Interpreter
{
    meta:
        verdict = "suspicious"
        description = "shell code that downloads a script and pipes it into an interpreter"
    strings:
        $pipe = /(curl|wget)[^\n|;]{1,300}\|\s*(sudo\s+)?(ba|z|da)?sh\b/
    condition:
        $pipe
}

rule Windows_Script_Host_Shell
{
    meta:
        verdict = "suspicious"
        description = "VBScript/JScript that starts programs through WScript.Shell"
    strings:
        $obj = "WScript.Shell" nocase ascii wide
        $run1 = ".Run" nocase ascii wide
        $run2 = ".Exec" nocase ascii wide
    condition:
        $obj and any of ($run*)
}

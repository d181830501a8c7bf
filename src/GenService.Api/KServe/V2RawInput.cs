namespace GenService.Api.KServe;

/// <summary>
/// One entry of a v2 request's <c>inputs</c> as pass 1 of <see cref="V2InferRequestReader"/> found it, nothing
/// checked yet: its JSON <c>data</c> is only located in the body (it may come before the shape and datatype that
/// say how to read it); <see cref="BinarySize"/> is -1 when the input carries no binary data.
/// </summary>
internal sealed class V2RawInput
{
    public string? Name;
    public long[]? Shape;
    public string? Datatype;
    public int DataStart = -1;
    public int DataLength;
    public long BinarySize = -1;
}
